"""Confusion matrix as an `evaluate.Metric` (loaded by path): rows are references, columns predictions."""

import datasets
import evaluate
from sklearn.metrics import confusion_matrix


class ConfusionMatrix(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Counts of reference (row) x predicted (column) labels.", citation="", inputs_description="",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}))

    def _compute(self, predictions, references, labels=None):
        return {"confusion_matrix": confusion_matrix(references, predictions, labels=labels).tolist()}
