"""The trainer: reads feature stores (never audio) and fits single- and multi-domain SER models."""
