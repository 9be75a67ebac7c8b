//! ferrotune-infer
