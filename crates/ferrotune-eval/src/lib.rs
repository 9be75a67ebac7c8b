//! ferrotune-eval
