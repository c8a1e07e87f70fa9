//! A hostile test guest: `handle` allocates without bound. The host must refuse to grow its
//! memory past the budget and report that, not crash or swap.

wit_bindgen::generate!({ path: "../../wit", world: "skill" });

use exports::edgenlu::nlu::nlu::{Error, Guest, Request, Response};

struct Hog;

impl Guest for Hog {
    fn handle(_req: Request) -> Result<Response, Error> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // Touch every page so nothing can be optimised away.
            hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
        }
    }
}

export!(Hog);
