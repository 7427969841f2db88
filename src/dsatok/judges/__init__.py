"""Third-party judges shared by data, training and evaluation.

A speaker encoder (:mod:`dsatok.judges.speaker`: who is speaking) and transcript error rates
(:mod:`dsatok.judges.text`: word / character / symbol error rates). Nothing here imports
``dsatok.data``, ``dsatok.train`` or ``dsatok.eval``, so every one of them may use it.
"""
