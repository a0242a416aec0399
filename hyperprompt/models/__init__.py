"""The T5 backbone: layers, attention, the encoder-decoder and its sizes."""
