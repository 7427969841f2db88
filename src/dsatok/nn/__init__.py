"""Neural-network layers shared by the dsatok models (no training code here)."""
