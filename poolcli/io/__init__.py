"""Readers and writers: images through Pillow, arrays through NumPy's .npy/.npz."""
