"""`mini`: the project's own small CLIPSeg: tokenizer, training losses, training command, card."""
