"""What the command-line tools in ``tools/`` share: config loading, pre-flight checks, CPU-distributed set-up,
building models outside a Runner, mixed precision (``enable_amp``), and the handling of user errors;
``mmswin.apis.export`` (ONNX and ``torch.export``, imported on its own: it is not re-exported here, and its
``load_config`` turns this package's errors into ``ExportError``).
The tools stay thin: argument parsing and calls into here."""
from .config import TASK_SCOPES, check_task_scope, find_resume_checkpoint, load_config, load_tool_config
from .distributed import adapt_distributed_to_cpu, init_cpu_process_group, prepare_distributed
from .errors import ConfigError, ToolError, add_debug_argument, run_tool, user_error_types
from .models import (DEFAULT_SHAPES, build_model, dummy_batch, dummy_inputs, init_model,
                     load_model_checkpoint)
from .precision import PRECISIONS, apply_precision, enable_amp, inference_dtype, training_device_type
from .preflight import (PRETRAINED_SOURCES, MissingPath, check_annotation_files, drop_pretrained_init,
                        find_missing_data,
                        find_missing_pretrained, missing_data_message, missing_pretrained_message)

__all__ = ['TASK_SCOPES', 'check_task_scope', 'find_resume_checkpoint', 'load_config', 'load_tool_config',
           'adapt_distributed_to_cpu', 'init_cpu_process_group', 'prepare_distributed', 'DEFAULT_SHAPES',
           'build_model', 'dummy_batch', 'dummy_inputs', 'init_model', 'load_model_checkpoint', 'PRETRAINED_SOURCES',
           'MissingPath', 'check_annotation_files', 'drop_pretrained_init', 'find_missing_data',
           'find_missing_pretrained', 'missing_data_message', 'missing_pretrained_message', 'ConfigError', 'ToolError',
           'add_debug_argument', 'run_tool', 'user_error_types', 'PRECISIONS',
           'apply_precision', 'enable_amp', 'inference_dtype', 'training_device_type']
