"""The Open Inference Protocol (KServe V2), once for every front-end: datatypes, models,
documents, tensors and the infer flow."""
