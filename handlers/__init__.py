"""Lambda entry points: a few lines each, calling into the tracker."""
