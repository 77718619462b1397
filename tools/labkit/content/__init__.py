"""What readers see: the notebooks and the bilingual site."""
