"""A service that loads a model once per replica, in `__init__`, and reuses it for every call.

The model is VADER, a rule-based sentiment model whose lexicon ships inside the
`vaderSentiment` package (requirements.txt: each replica pip-installs it when it starts).
`threshold` is an init param: the service's `initParams` give it, once per replica.
"""

import itertools
import os
import threading
import time
import uuid

import spool
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

_inits = 0  # how many times this process built the service: once per replica
_inits_lock = threading.Lock()


class ServiceRunner(spool.BaseServiceRunner):
    def __init__(self, threshold: float = 0.05):
        global _inits
        started = time.monotonic()
        self.analyzer = SentimentIntensityAnalyzer()  # reads its 7,500-word lexicon
        self.threshold = threshold
        self.instance = uuid.uuid4().hex[:8]
        self.load_seconds = round(time.monotonic() - started, 3)
        self._calls = itertools.count(1)
        with _inits_lock:
            _inits += 1
        print(f"model loaded in {self.load_seconds} s (instance {self.instance})")

    def predict(self, text: str):
        scores = self.analyzer.polarity_scores(text)
        compound = scores["compound"]
        if compound >= self.threshold:
            sentiment = "positive"
        elif compound <= -self.threshold:
            sentiment = "negative"
        else:
            sentiment = "neutral"
        return {
            "text": text,
            "sentiment": sentiment,
            "compound": compound,
            "threshold": self.threshold,
            "inits": _inits,
            "calls": next(self._calls),
            "instance": self.instance,
            "pid": os.getpid(),
            "loadSeconds": self.load_seconds,
        }
