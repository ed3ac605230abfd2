"""Math shared by two or more layers."""
