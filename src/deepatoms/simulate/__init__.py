"""Simulations with trained models: ASE calculator, relaxation, MD, vibrations and scans."""

from deepatoms.simulate.calculator import Calculator

__all__ = ["Calculator"]
