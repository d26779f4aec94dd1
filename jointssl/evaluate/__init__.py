"""Evaluation of encoders on methane source classification (the paper's protocol, METER-ML's metrics)."""
