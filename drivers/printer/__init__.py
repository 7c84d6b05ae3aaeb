"""Printer drivers: IPP Get-Printer-Attributes through a small stdlib IPP codec (ipp, ipp_model)."""
