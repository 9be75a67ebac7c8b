//! Choosing the device models run on.

use candle_core::Device;

use crate::ModelError;

/// The device named `cpu`, `cuda` or `cuda:N`. CUDA needs a build with the
/// `cuda` feature (and a GPU); otherwise this is an error that says so.
pub fn device_from_name(name: &str) -> Result<Device, ModelError> {
    let ordinal = match name {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => n,
            None => return Err(ModelError::Device(format!("unknown device '{other}' (cpu, cuda or cuda:N)"))),
        },
    };
    if !cfg!(feature = "cuda") {
        return Err(ModelError::Device(format!(
            "device '{name}': this build has no CUDA support; rebuild with `--features cuda`"
        )));
    }
    Device::new_cuda(ordinal).map_err(|e| ModelError::Device(format!("device '{name}': {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_devices() {
        assert!(device_from_name("cpu").unwrap().is_cpu());
        assert!(device_from_name("gpu").unwrap_err().to_string().contains("unknown device 'gpu'"));
        if !cfg!(feature = "cuda") {
            assert!(device_from_name("cuda:1").unwrap_err().to_string().contains("--features cuda"));
        }
    }
}
