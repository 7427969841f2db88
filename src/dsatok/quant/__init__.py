"""Finite scalar quantisation wrappers (vector-quantize-pytorch) and bitrate helpers."""
