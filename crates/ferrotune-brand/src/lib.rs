//! The brand-value model of the design document: a weighted multi-objective
//! scorecard `total = V(B) + a*U(X) + b*T(I) + c*M(M)`, each term a base value
//! plus a weighted sum of normalised indicators; with AHP weights,
//! sensitivity analysis, budget allocation and HTML reports. No tensors here.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod ahp;
pub mod allocate;
mod error;
pub mod normalize;
pub mod report;
pub mod score;
pub mod scorecard;
pub mod sensitivity;

pub use error::BrandError;
pub use scorecard::{Scorecard, TERMS};
