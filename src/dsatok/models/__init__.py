"""dsatok models (inference code only; training lives in ``dsatok.train``)."""
