"""Inverse design with grammar VAEs: latent spaces, regressors, ICM (Paper D)."""
