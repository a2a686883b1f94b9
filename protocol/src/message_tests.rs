//! Round trips of every message, and the strategies other tests use.

use super::*;
use crate::{FrameDecoder, encode_frame};
use proptest::prelude::*;

fn arb_status() -> impl Strategy<Value = BotStatus> {
    proptest::sample::select(BotStatus::ALL.to_vec())
}

fn arb_reason() -> impl Strategy<Value = Option<StatusReason>> {
    proptest::option::of(proptest::sample::select(StatusReason::ALL.to_vec()))
}

fn arb_uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn arb_report() -> impl Strategy<Value = BotReport> {
    (arb_uuid(), any::<u64>(), arb_status()).prop_map(|(bot_id, generation, status)| BotReport {
        bot_id,
        generation,
        status,
    })
}

pub(crate) fn arb_worker_msg() -> impl Strategy<Value = WorkerMsg> {
    prop_oneof![
        (
            any::<u32>(),
            ".{0,20}",
            any::<u32>(),
            proptest::collection::vec(arb_report(), 0..4)
        )
            .prop_map(|(protocol_version, software_version, capacity, bots)| {
                WorkerMsg::Hello {
                    protocol_version,
                    software_version,
                    capacity,
                    bots,
                }
            }),
        (
            any::<(u32, u32, u32, bool)>(),
            proptest::collection::vec(arb_report(), 0..4)
        )
            .prop_map(|((active_bots, capacity, rss_mib, draining), bots)| {
                WorkerMsg::Heartbeat {
                    load: Load {
                        active_bots,
                        capacity,
                        rss_mib,
                        draining,
                    },
                    bots,
                }
            }),
        (arb_uuid(), any::<u64>(), ".{0,40}").prop_map(|(bot_id, generation, message)| {
            WorkerMsg::Refused {
                bot_id,
                generation,
                code: ErrorCode::StaleGeneration,
                message,
            }
        }),
    ]
}

fn arb_control_msg() -> impl Strategy<Value = ControlMsg> {
    prop_oneof![
        (".{0,20}", ".{0,10}", any::<u64>()).prop_map(|(worker_id, region, hb)| {
            ControlMsg::Welcome {
                worker_id,
                region,
                heartbeat_interval_ms: hb,
            }
        }),
        (
            arb_uuid(),
            any::<u64>(),
            arb_uuid(),
            ".{0,80}",
            ".{0,30}",
            any::<(u64, u64, u64, u64)>()
        )
            .prop_map(
                |(bot_id, generation, tenant_id, meeting_url, bot_name, (j, l, m, n))| {
                    ControlMsg::Assign(Box::new(Assignment {
                        bot_id,
                        generation,
                        tenant_id,
                        meeting_url,
                        platform: Platform::Sandbox,
                        bot_name,
                        limits: SessionLimits {
                            join_timeout_ms: j,
                            lobby_timeout_ms: l,
                            max_duration_ms: m,
                            nobody_joined_ms: n,
                            alone_ms: n / 2,
                            silence_ms: n / 3,
                            no_audio_warning_ms: j / 2,
                        },
                        data_key: DataKey::from_bytes(&[n as u8; 32]).unwrap(),
                        transcription: (j % 2 == 0).then(|| TranscriptionSpec {
                            provider: TranscriptionProvider::OpenAiCompatible {
                                endpoint: "http://127.0.0.1:1/v1".into(),
                                model: "whisper-1".into(),
                                api_key: Some(Secret::new("sk-test")),
                            },
                            language: Some("en".into()),
                        }),
                        trace_parent: (j % 3 == 0).then(|| {
                            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()
                        }),
                    }))
                }
            ),
        (arb_uuid(), any::<u64>())
            .prop_map(|(bot_id, generation)| ControlMsg::Cancel { bot_id, generation }),
        (arb_uuid(), any::<u64>())
            .prop_map(|(bot_id, generation)| ControlMsg::Revoke { bot_id, generation }),
        (arb_uuid(), any::<u64>(), any::<u64>()).prop_map(|(bot_id, generation, seq)| {
            ControlMsg::Ack {
                bot_id,
                generation,
                seq,
            }
        }),
        Just(ControlMsg::Drain),
    ]
}

fn arb_body() -> impl Strategy<Value = ResultBody> {
    prop_oneof![
        any::<u64>().prop_map(|through| ResultBody::Skipped { through }),
        (arb_status(), arb_reason(), proptest::option::of(".{0,40}")).prop_map(
            |(status, reason, detail)| ResultBody::Status {
                status,
                reason,
                detail,
            }
        ),
        (".{0,20}", ".{0,20}").prop_map(|(participant_id, name)| {
            ResultBody::ParticipantJoined {
                participant_id,
                name,
            }
        }),
        ".{0,20}".prop_map(|participant_id| ResultBody::ParticipantLeft { participant_id }),
        (".{0,20}", ".{0,20}").prop_map(|(participant_id, name)| {
            ResultBody::SpeakerStarted {
                participant_id,
                name,
            }
        }),
        ".{0,20}".prop_map(|participant_id| ResultBody::SpeakerStopped { participant_id }),
        (".{0,20}", ".{0,20}", ".{0,80}").prop_map(|(message_id, sender, text)| {
            ResultBody::Chat {
                message_id,
                sender,
                text,
            }
        }),
        ".{0,20}".prop_map(|format| ResultBody::RecordingStarted { format }),
        (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..600))
            .prop_map(|(offset, bytes)| ResultBody::RecordingChunk { offset, bytes }),
        (any::<u64>(), any::<u64>(), "[0-9a-f]{64}").prop_map(
            |(size_bytes, duration_ms, sha256)| ResultBody::RecordingFinished {
                size_bytes,
                duration_ms,
                sha256,
            }
        ),
        (
            proptest::sample::select(WarningCode::ALL.to_vec()),
            ".{0,40}"
        )
            .prop_map(|(code, detail)| ResultBody::Warning { code, detail }),
        (
            ".{0,20}",
            any::<(u64, u64, bool)>(),
            proptest::option::of(".{0,20}"),
            ".{0,200}",
            0f32..=1.0,
        )
            .prop_map(
                |(segment_id, (start_ms, end_ms, is_final), speaker, text, confidence)| {
                    ResultBody::Transcript(TranscriptSegment {
                        segment_id,
                        start_ms,
                        end_ms,
                        speaker,
                        text,
                        confidence,
                        language: Some("en".into()),
                        is_final,
                    })
                }
            ),
    ]
}

fn test_key() -> DataKey {
    DataKey::from_bytes(&[7; 32]).unwrap()
}

fn arb_result() -> impl Strategy<Value = (ResultFrame, ResultBody)> {
    (
        arb_uuid(),
        any::<u64>(),
        any::<u64>(),
        any::<i64>(),
        arb_body(),
    )
        .prop_map(|(bot_id, generation, seq, at_ms, body)| {
            (
                ResultFrame::seal(&test_key(), bot_id, generation, seq, at_ms, &body),
                body,
            )
        })
}

#[test]
fn recording_bytes_travel_compactly() {
    // Bytes, not a sequence of varints: a full chunk fits one frame.
    let body = ResultBody::RecordingChunk {
        offset: 0,
        bytes: vec![0xff; MAX_RECORDING_CHUNK],
    };
    let frame = ResultFrame::seal(&test_key(), Uuid::nil(), 1, 1, 0, &body);
    let encoded = encode_frame(&frame).unwrap();
    assert!(
        encoded.len() < MAX_RECORDING_CHUNK + 96,
        "{}",
        encoded.len()
    );
}

#[test]
fn a_sealed_frame_opens_only_in_its_place() {
    let body = ResultBody::Chat {
        message_id: "m1".into(),
        sender: "Ann".into(),
        text: "hello".into(),
    };
    let frame = ResultFrame::seal(&test_key(), Uuid::from_u128(1), 2, 3, 4, &body);
    assert_eq!(frame.open(&test_key()).unwrap(), body);
    let mut moved = frame.clone();
    moved.seq = 4;
    assert_eq!(moved.open(&test_key()), Err(SealError::Forged));
    let mut other_bot = frame.clone();
    other_bot.bot_id = Uuid::from_u128(2);
    assert_eq!(other_bot.open(&test_key()), Err(SealError::Forged));
    assert_eq!(
        frame.open(&DataKey::from_bytes(&[8; 32]).unwrap()),
        Err(SealError::Forged)
    );
    assert!(
        !frame.sealed.windows(5).any(|w| w == b"hello"),
        "the text travels sealed"
    );
}

fn round_trip<T>(msg: &T) -> T
where
    T: Serialize + serde::de::DeserializeOwned,
{
    let mut d = FrameDecoder::new();
    d.push(&encode_frame(msg).unwrap());
    let out = d.next_frame().unwrap().unwrap();
    d.finish().unwrap();
    out
}

proptest! {
    #[test]
    fn worker_msgs_round_trip(m in arb_worker_msg()) {
        prop_assert_eq!(round_trip(&m), m);
    }

    #[test]
    fn control_msgs_round_trip(m in arb_control_msg()) {
        prop_assert_eq!(round_trip(&m), m);
    }

    #[test]
    fn result_frames_round_trip((m, body) in arb_result()) {
        let back = round_trip(&m);
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(back.open(&test_key()).unwrap(), body);
    }

    #[test]
    fn enrollment_round_trips(token in ".{0,64}", csr in ".{0,200}", hostname in ".{0,30}") {
        let req = EnrollRequest { token, csr_pem: csr, hostname };
        prop_assert_eq!(round_trip(&req), req);
    }

    #[test]
    fn enrollment_answers_round_trip(id in ".{0,20}", region in ".{0,10}", pool in proptest::option::of("[a-z-]{1,32}")) {
        let resp = EnrollResponse::Enrolled {
            worker_id: id,
            region,
            cert_pem: "c".into(),
            ca_pem: "a".into(),
            pool,
        };
        prop_assert_eq!(round_trip(&resp), resp);
    }
}
