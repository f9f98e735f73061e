"""Training: the Trainer subclass and its set-up, the batch order (length-grouped, packed) and the
train/evaluate/predict stages a recipe asks for.

A change to how batches are formed, how the loss is weighed or which callbacks run goes here; what
is scored goes in common.evaluation, what is written afterwards in common.outputs.
"""
