"""Encrypted CKKS inference with tile tensors (TenSEAL/SEAL)."""
