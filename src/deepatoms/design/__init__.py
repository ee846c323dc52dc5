"""Inverse design with grammar VAEs: latent spaces, regressors, ICM (specs/grammar-vae.md)."""
