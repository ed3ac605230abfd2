"""Test support shared by recaffe's own tests and by users testing their own layers."""
