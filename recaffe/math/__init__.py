"""Math shared by two or more layers (no layer-specific code here)."""
