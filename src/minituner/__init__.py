"""minituner: the workbook package of Lab 00, "LoRA by hand".

model.py holds MiniGPT (complete, read it); lora.py holds the functions you implement.
Import them from their modules: `from minituner.lora import LoRALinear`.
"""

__version__ = "0.1.0"
