//! The GGUF reader on arbitrary bytes: it must return a typed error or a model whose every
//! tensor's data lies inside the file, never panic or read out of bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = edgenlu_models::GgufFile::from_bytes(data.to_vec()) {
        let _ = file.architecture();
        for (_, value) in file.metadata_iter() {
            let _ = (value.as_i64(), value.as_f64(), value.as_str(), value.as_array());
        }
        for t in file.tensors() {
            let elems: usize = t.shape().iter().product();
            let row = t.dtype().row_bytes(*t.shape().last().unwrap()).unwrap();
            assert_eq!(t.data().len(), row * (elems / t.shape().last().unwrap()));
        }
    }
});
