"""Training TinySAM on generated scenes. Imports only torch, numpy, Pillow and scikit-image."""
