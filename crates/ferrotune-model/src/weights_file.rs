//! Reading a safetensors file one tensor at a time: the header is parsed
//! and checked against the file's length, then each tensor is read into its
//! own buffer, so loading never holds the whole file beside the tensors.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use crate::ModelError;

/// Headers above this size are refused (as the safetensors format does).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// One tensor's entry in the header.
#[derive(Debug, Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

/// The tensors of a safetensors file, read on demand.
pub(crate) struct WeightsFile {
    file: File,
    path: PathBuf,
    /// Tensors by name, with their data's start in the file.
    entries: BTreeMap<String, (Entry, u64)>,
    /// The header's `__metadata__` (free-form strings).
    metadata: BTreeMap<String, String>,
}

impl WeightsFile {
    /// Opens `path` and checks its header: every tensor's bytes must lie in
    /// the file and match its shape and type.
    pub(crate) fn open(path: &Path) -> Result<Self, ModelError> {
        let error = |message: String| ModelError::Weights { path: path.to_path_buf(), message };
        let mut file = File::open(path).map_err(|e| ModelError::io(path, e))?;
        let length = file.metadata().map_err(|e| ModelError::io(path, e))?.len();
        let mut size = [0u8; 8];
        file.read_exact(&mut size).map_err(|_| error("shorter than a safetensors header".into()))?;
        let header_bytes = u64::from_le_bytes(size);
        if header_bytes > MAX_HEADER_BYTES || 8 + header_bytes > length {
            return Err(error(format!("header of {header_bytes} bytes does not fit in a file of {length} bytes")));
        }
        let mut header = vec![0u8; header_bytes as usize];
        file.read_exact(&mut header).map_err(|e| ModelError::io(path, e))?;
        let mut raw: BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(&header).map_err(|e| error(format!("header is not valid JSON: {e}")))?;
        let metadata = match raw.remove("__metadata__") {
            Some(value) => serde_json::from_value(value).map_err(|e| error(format!("__metadata__: {e}")))?,
            None => BTreeMap::new(),
        };
        let data_start = 8 + header_bytes;
        let mut entries = BTreeMap::new();
        for (name, value) in raw {
            let entry: Entry =
                serde_json::from_value(value).map_err(|e| error(format!("tensor '{name}' in the header: {e}")))?;
            let [begin, end] = entry.data_offsets;
            let expected = entry.shape.iter().product::<usize>() as u64 * element_bytes(&entry.dtype) as u64;
            if begin > end || (element_bytes(&entry.dtype) > 0 && end - begin != expected) {
                return Err(error(format!(
                    "tensor '{name}' ({} {:?}) has {} bytes of data",
                    entry.dtype,
                    entry.shape,
                    end.saturating_sub(begin)
                )));
            }
            if data_start + end > length {
                return Err(error(format!(
                    "truncated: tensor '{name}' ends at byte {}, the file has {length}",
                    data_start + end
                )));
            }
            entries.insert(name, (entry, data_start + begin));
        }
        Ok(Self { file, path: path.to_path_buf(), entries, metadata })
    }

    /// A value of the header's `__metadata__`.
    pub(crate) fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// The shape of tensor `name`, if there is one.
    pub(crate) fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|(e, _)| e.shape.as_slice())
    }

    /// The names of the tensors, sorted.
    pub(crate) fn names(&self) -> impl Iterator<Item = &String> {
        self.entries.keys()
    }

    /// Whether `name` is stored as unsigned bytes (int8 bit patterns).
    pub(crate) fn is_bytes(&self, name: &str) -> bool {
        self.entries.get(name).is_some_and(|(e, _)| e.dtype == "U8")
    }

    /// Reads tensor `name`: floating-point types as f32, `U8` as is; `None`
    /// for other types (integer buffers such as `position_ids`).
    pub(crate) fn read(&mut self, name: &str, device: &Device) -> Result<Option<Tensor>, ModelError> {
        let (entry, offset) = self.entries.get(name).ok_or_else(|| ModelError::Weights {
            path: self.path.clone(),
            message: format!("missing tensor '{name}'"),
        })?;
        let (shape, offset, dtype) = (entry.shape.clone(), *offset, entry.dtype.clone());
        let bytes = (entry.data_offsets[1] - entry.data_offsets[0]) as usize;
        let tensor = match dtype.as_str() {
            "F32" => {
                let mut values = vec![0f32; bytes / 4];
                self.read_at(offset, bytemuck::cast_slice_mut(&mut values))?;
                Tensor::from_vec(values, shape, device)?
            }
            "U8" => {
                let mut values = vec![0u8; bytes];
                self.read_at(offset, &mut values)?;
                Tensor::from_vec(values, shape, device)?
            }
            dtype @ ("F16" | "BF16" | "F64") => {
                let mut raw = vec![0u8; bytes];
                self.read_at(offset, &mut raw)?;
                let dtype = match dtype {
                    "F16" => DType::F16,
                    "BF16" => DType::BF16,
                    _ => DType::F64,
                };
                Tensor::from_raw_buffer(&raw, dtype, &shape, device)?.to_dtype(DType::F32)?
            }
            _ => return Ok(None),
        };
        Ok(Some(tensor))
    }

    fn read_at(&mut self, offset: u64, buffer: &mut [u8]) -> Result<(), ModelError> {
        self.file.seek(SeekFrom::Start(offset)).map_err(|e| ModelError::io(&self.path, e))?;
        self.file.read_exact(buffer).map_err(|e| ModelError::io(&self.path, e))
    }
}

/// Bytes per element of a safetensors dtype name (0 when unknown).
fn element_bytes(dtype: &str) -> usize {
    match dtype {
        "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" => 8,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn write(dir: &Path, tensors: &[(&str, Tensor)]) -> PathBuf {
        let path = dir.join("w.safetensors");
        let map: HashMap<String, Tensor> = tensors.iter().map(|(n, t)| (n.to_string(), t.clone())).collect();
        candle_core::safetensors::save(&map, &path).unwrap();
        path
    }

    #[test]
    fn reads_each_type_as_candle_does() {
        let dir = tempfile::tempdir().unwrap();
        let f32s = Tensor::arange(0f32, 6., &Device::Cpu).unwrap().reshape((2, 3)).unwrap();
        let path = write(
            dir.path(),
            &[
                ("a", f32s.clone()),
                ("b", f32s.to_dtype(DType::BF16).unwrap()),
                ("c", f32s.to_dtype(DType::F16).unwrap()),
                ("q", Tensor::from_vec(vec![1u8, 255, 128], 3, &Device::Cpu).unwrap()),
                ("ids", Tensor::from_vec(vec![0i64, 1], 2, &Device::Cpu).unwrap()),
            ],
        );
        let mut file = WeightsFile::open(&path).unwrap();
        assert_eq!(file.names().cloned().collect::<Vec<_>>(), ["a", "b", "c", "ids", "q"]);
        for name in ["a", "b", "c"] {
            let t = file.read(name, &Device::Cpu).unwrap().unwrap();
            assert_eq!(t.to_vec2::<f32>().unwrap(), f32s.to_vec2::<f32>().unwrap(), "{name}");
        }
        assert!(file.is_bytes("q") && !file.is_bytes("a"));
        assert_eq!(file.read("q", &Device::Cpu).unwrap().unwrap().to_vec1::<u8>().unwrap(), [1, 255, 128]);
        assert!(file.read("ids", &Device::Cpu).unwrap().is_none());
        assert!(file.read("zz", &Device::Cpu).unwrap_err().to_string().contains("missing tensor 'zz'"));
    }

    #[test]
    fn truncated_and_garbled_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &[("a", Tensor::zeros((4, 4), DType::F32, &Device::Cpu).unwrap())]);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let err = WeightsFile::open(&path).err().unwrap().to_string();
        assert!(err.contains("w.safetensors") && err.contains("truncated: tensor 'a'"), "{err}");
        std::fs::write(&path, &bytes[..20]).unwrap();
        let err = WeightsFile::open(&path).err().unwrap().to_string();
        assert!(err.contains("does not fit"), "{err}");
        std::fs::write(&path, b"xy").unwrap();
        let err = WeightsFile::open(&path).err().unwrap().to_string();
        assert!(err.contains("shorter than a safetensors header"), "{err}");
        let mut garbled = bytes.clone();
        garbled[8] = b'!';
        std::fs::write(&path, &garbled).unwrap();
        let err = WeightsFile::open(&path).err().unwrap().to_string();
        assert!(err.contains("not valid JSON"), "{err}");
    }
}
