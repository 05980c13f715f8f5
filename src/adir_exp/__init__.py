"""ADIR experiment framework."""
