//! Every byte sequence a peer can send: the decoder must return frames or a
//! clean error, never panic, hang or allocate from an untrusted length.
#![no_main]

use attache_protocol::{ControlMsg, EnrollRequest, FrameDecoder, ResultFrame, WorkerMsg, encode_frame};
use libfuzzer_sys::fuzz_target;

fn drain<T: serde::de::DeserializeOwned + serde::Serialize>(data: &[u8]) {
    // Fed in two pieces, split where the input says, as a network would.
    let cut = data.first().map_or(0, |b| *b as usize).min(data.len());
    let mut d = FrameDecoder::new();
    for chunk in [&data[..cut], &data[cut..]] {
        d.push(chunk);
        loop {
            match d.next_frame::<T>() {
                Ok(Some(msg)) => {
                    // Whatever decodes must encode again.
                    encode_frame(&msg).expect("decoded frames re-encode");
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
    let _ = d.finish();
}

fuzz_target!(|data: &[u8]| {
    drain::<WorkerMsg>(data);
    drain::<ControlMsg>(data);
    drain::<ResultFrame>(data);
    drain::<EnrollRequest>(data);
});
