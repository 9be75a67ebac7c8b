//! NumPy `.npy` files of f32 matrices (`<f4`, C order, two dimensions):
//! written row by row with the row count filled in at the end, read back
//! whole. `numpy.load` reads what [`NpyWriter`] writes.

use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use crate::DataError;

const MAGIC: &[u8] = b"\x93NUMPY";
/// The header of a written file, padded to this many bytes whatever the
/// row count (a multiple of 64, as NumPy aligns the data).
const HEADER_BYTES: usize = 128;

fn header(rows: usize, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let mut out = MAGIC.to_vec();
    out.extend([1, 0]);
    let len = HEADER_BYTES - out.len() - 2;
    out.extend((len as u16).to_le_bytes());
    out.extend(dict.as_bytes());
    out.resize(HEADER_BYTES - 1, b' ');
    out.push(b'\n');
    out
}

/// Writes an f32 matrix of `cols` columns row by row into a seekable file.
pub struct NpyWriter<W: Write + Seek> {
    out: BufWriter<W>,
    cols: usize,
    rows: usize,
}

impl<W: Write + Seek> NpyWriter<W> {
    /// Starts a matrix of `cols` columns (the header is completed by
    /// [`Self::finish`]).
    pub fn new(out: W, cols: usize) -> io::Result<Self> {
        let mut out = BufWriter::new(out);
        out.write_all(&header(0, cols))?;
        Ok(Self { out, cols, rows: 0 })
    }

    /// Appends rows (`values.len()` a multiple of the column count).
    pub fn write_rows(&mut self, values: &[f32]) -> io::Result<()> {
        if self.cols == 0 || !values.len().is_multiple_of(self.cols) {
            return Err(io::Error::other(format!("{} values do not make rows of {}", values.len(), self.cols)));
        }
        for v in values {
            self.out.write_all(&v.to_le_bytes())?;
        }
        self.rows += values.len() / self.cols;
        Ok(())
    }

    /// Writes the row count into the header and flushes; returns the file.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header(self.rows, self.cols))?;
        self.out.flush()?;
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

/// Writes `data` (rows of `cols` values) to `path` atomically.
pub fn write_f32_matrix(path: &Path, data: &[f32], cols: usize) -> io::Result<()> {
    crate::atomic::write_atomic(path, |tmp| {
        let mut writer = NpyWriter::new(std::fs::File::create(tmp)?, cols)?;
        writer.write_rows(data)?;
        writer.finish().map(drop)
    })
}

/// An f32 matrix read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// The values, row after row.
    pub data: Vec<f32>,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
}

/// Reads a two-dimensional little-endian f32 `.npy` file (any header
/// version); anything else, or a file shorter or longer than its shape
/// says, is an error naming the file.
pub fn read_f32_matrix(path: &Path) -> Result<Matrix, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    parse(&bytes).map_err(|message| DataError::Npy { path: path.to_path_buf(), message })
}

fn parse(bytes: &[u8]) -> Result<Matrix, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let dict = bytes.get(start..start + len).ok_or("truncated header")?;
    let dict = std::str::from_utf8(dict).map_err(|_| "header is not text")?;
    let value = |key: &str| -> Result<&str, String> {
        let at = dict.find(&format!("'{key}':")).ok_or(format!("header has no '{key}'"))?;
        Ok(dict[at + key.len() + 3..].trim_start())
    };
    if !value("descr")?.starts_with("'<f4'") {
        return Err("expected little-endian float32 values ('<f4')".into());
    }
    if !value("fortran_order")?.starts_with("False") {
        return Err("expected C order (fortran_order False)".into());
    }
    let shape = value("shape")?;
    let shape = shape.strip_prefix('(').and_then(|s| s.split(')').next()).ok_or("malformed shape")?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| format!("malformed shape ({shape})")))
        .collect::<Result<_, _>>()?;
    let [rows, cols] = dims[..] else { return Err(format!("expected a matrix (2 dimensions), found ({shape})")) };
    let body = &bytes[start + len..];
    let expected = rows.checked_mul(cols).and_then(|n| n.checked_mul(4)).ok_or("shape too large")?;
    if body.len() != expected {
        return Err(format!("{} bytes of values for shape ({rows}, {cols}), expected {expected}", body.len()));
    }
    let data = body.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok(Matrix { data, rows, cols })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_matrices_have_numpys_header_and_read_back() {
        let mut writer = NpyWriter::new(io::Cursor::new(Vec::new()), 3).unwrap();
        writer.write_rows(&[1.0, -2.5, 3.0]).unwrap();
        writer.write_rows(&[0.0, f32::MIN_POSITIVE, 1e30, 4.0, 5.0, 6.0]).unwrap();
        assert!(writer.write_rows(&[1.0]).is_err(), "not a whole row");
        let bytes = writer.finish().unwrap().into_inner();
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 3), }";
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]) as usize + 10, HEADER_BYTES);
        assert_eq!(&bytes[10..10 + dict.len()], dict.as_bytes());
        assert_eq!(bytes[HEADER_BYTES - 1], b'\n');
        let m = parse(&bytes).unwrap();
        assert_eq!((m.rows, m.cols), (3, 3));
        assert_eq!(m.data, [1.0, -2.5, 3.0, 0.0, f32::MIN_POSITIVE, 1e30, 4.0, 5.0, 6.0]);
        assert!(parse(&bytes[..bytes.len() - 1]).unwrap_err().contains("expected 36"), "truncated");
        let empty = NpyWriter::new(io::Cursor::new(Vec::new()), 4).unwrap().finish().unwrap().into_inner();
        assert_eq!(parse(&empty).unwrap(), Matrix { data: vec![], rows: 0, cols: 4 });
    }

    #[test]
    fn files_numpy_writes_are_read_and_others_refused() {
        // numpy.save(f, np.array([[1, 2]], dtype='<f4')): the same 128-byte header as ours.
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }";
        let mut bytes = b"\x93NUMPY\x01\x00v\x00".to_vec();
        bytes.extend(format!("{dict:<117}\n").as_bytes());
        assert_eq!(bytes, header(1, 2));
        bytes.extend([1f32, 2.0].iter().flat_map(|v| v.to_le_bytes()));
        assert_eq!(parse(&bytes).unwrap().data, [1.0, 2.0]);
        let mut f8 = bytes.clone();
        f8[10 + dict.find("<f4").unwrap() + 2] = b'8';
        assert!(parse(&f8).unwrap_err().contains("'<f4'"));
        assert!(parse(b"PK\x03\x04 not npy").unwrap_err().contains("magic"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.npy");
        write_f32_matrix(&path, &[1.0, 2.0, 3.0, 4.0], 2).unwrap();
        assert_eq!(read_f32_matrix(&path).unwrap().rows, 2);
        std::fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
        let e = read_f32_matrix(&path).unwrap_err().to_string();
        assert!(e.starts_with(&path.display().to_string()) && e.contains("bytes of values"), "{e}");
    }
}
