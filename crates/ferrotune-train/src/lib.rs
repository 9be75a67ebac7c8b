//! ferrotune-train
