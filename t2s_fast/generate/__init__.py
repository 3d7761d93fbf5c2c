"""Generation backends behind one seam (`base.Generator`): vLLM with LoRA hot-swapping, or transformers+PEFT."""
