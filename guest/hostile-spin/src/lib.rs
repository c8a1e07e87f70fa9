//! A hostile test guest: `handle` never returns. The host must stop it at its deadline.

wit_bindgen::generate!({ path: "../../wit", world: "skill" });

use exports::edgenlu::nlu::nlu::{Error, Guest, Request, Response};

struct Spin;

impl Guest for Spin {
    fn handle(req: Request) -> Result<Response, Error> {
        let mut n: u64 = req.text.len() as u64;
        loop {
            // black_box keeps the loop from being optimised into something else.
            n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

export!(Spin);
