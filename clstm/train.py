"""clstm.train: the trainer's names in one place, as before the split by job.

    clstm.tasks        LanguageModelTask, SequenceTask, ForecastTask, LabellingTask
    clstm.trainer      Trainer, TrainingStopped, NonFiniteLoss, Interrupted
    clstm.checkpoints  load_checkpoint, save_checkpoint
    clstm.sampling     generate_text

    task = LanguageModelTask(TextStream(text), batch_size=32, bptt=64)
    model = Model(vocab=task.vocab, hidden_size=256, output_size=len(task.vocab),
                  softmax=True, seed=0)
    Trainer(model, task, epochs=2, out="char.safetensors").fit()
"""
from clstm.checkpoints import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from clstm.sampling import generate_text
from clstm.tasks import (ForecastSettings, ForecastTask, LabellingTask, LanguageModelTask,
                         SequenceTask)
from clstm.trainer import Interrupted, NonFiniteLoss, Trainer, TrainingStopped

__all__ = ["Trainer", "LanguageModelTask", "SequenceTask", "ForecastTask", "ForecastSettings",
           "LabellingTask",
           "TrainingStopped", "NonFiniteLoss", "Interrupted", "generate_text",
           "load_checkpoint", "save_checkpoint", "CHECKPOINT_FORMAT"]
