"""F1 (macro, micro, weighted) and per-class precision/recall/F1 as an `evaluate.Metric` (loaded by path);
``average=`` asks for one average alone."""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import f1_score, precision_recall_fscore_support


class F1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="F1 averaged three ways, and per-class precision, recall, F1 and support.", citation="",
            inputs_description="",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}))

    def _compute(self, predictions, references, labels=None, average=None):
        # One average only (as the hub's f1 module computes) when asked: a bootstrap loop needs no more.
        if average is not None:
            return {f"{average}_f1": float(f1_score(references, predictions, labels=labels, average=average,
                                                     zero_division=0))}
        out = {f"{avg}_f1": float(f1_score(references, predictions, labels=labels, average=avg, zero_division=0))
               for avg in ("macro", "micro", "weighted")}
        # Per class, a ratio with nothing to count is undefined (NaN), not 0: a class absent from these
        # rows and never predicted has no precision, recall or F1, and read 0.000 as if it always failed.
        p, r, f, s = precision_recall_fscore_support(references, predictions, labels=labels, zero_division=np.nan)
        out.update(precision=p.tolist(), recall=r.tolist(), f1=f.tolist(), support=s.tolist())
        return out
