use super::*;

fn meeting(admission: Admission) -> (Meetings, String) {
    let ms = Meetings::default();
    let opts = MeetingOptions {
        admission,
        admit_after_ms: 0,
        ..Default::default()
    };
    ms.create("m1", opts, None).unwrap();
    (ms, "m1".into())
}

#[test]
fn admit_deny_never() {
    for (admission, want) in [
        (Admission::Admit, ParticipantState::Admitted),
        (Admission::Open, ParticipantState::Admitted),
        (Admission::Deny, ParticipantState::Denied),
        (Admission::Never, ParticipantState::Lobby),
        (Admission::Manual, ParticipantState::Lobby),
    ] {
        let (ms, id) = meeting(admission);
        let (pid, secret) = ms.knock(&id, "Bot").unwrap();
        assert_eq!(
            ms.poll(&id, &pid, &secret).unwrap().state,
            want,
            "{admission:?}"
        );
    }
}

#[test]
fn host_admits_then_removes() {
    let (ms, id) = meeting(Admission::Manual);
    let (pid, secret) = ms.knock(&id, "Bot").unwrap();
    ms.set_state(
        &id,
        "Bot",
        &[ParticipantState::Lobby],
        ParticipantState::Admitted,
    )
    .unwrap();
    let v = ms.poll(&id, &pid, &secret).unwrap();
    assert_eq!(v.state, ParticipantState::Admitted);
    assert_eq!(v.participants.len(), 2, "host and bot");
    ms.set_state(
        &id,
        "Bot",
        &[ParticipantState::Admitted],
        ParticipantState::Removed,
    )
    .unwrap();
    assert_eq!(
        ms.poll(&id, &pid, &secret).unwrap().state,
        ParticipantState::Removed
    );
}

#[test]
fn wrong_secret_and_bad_names_are_refused() {
    let (ms, id) = meeting(Admission::Admit);
    let (pid, _) = ms.knock(&id, "Bot").unwrap();
    assert!(matches!(
        ms.poll(&id, &pid, "nope"),
        Err(SandboxError::Forbidden)
    ));
    assert!(matches!(ms.knock(&id, "   "), Err(SandboxError::BadName)));
    assert!(matches!(
        ms.knock(&id, &"x".repeat(300)),
        Err(SandboxError::BadName)
    ));
    assert!(matches!(
        ms.knock("nope", "Bot"),
        Err(SandboxError::NotFound)
    ));
}

#[test]
fn ended_and_missing_meetings_refuse_knocks() {
    let (ms, id) = meeting(Admission::Admit);
    ms.end(&id).unwrap();
    assert!(ms.knock(&id, "Bot").is_err());
    ms.create(
        "gone",
        MeetingOptions {
            missing: true,
            ..Default::default()
        },
        None,
    )
    .unwrap();
    assert!(ms.knock("gone", "Bot").is_err());
}

fn scripted(script: &str) -> (Meetings, String) {
    let ms = Meetings::default();
    let opts = MeetingOptions {
        admission: Admission::Open,
        script: Some(script.into()),
        ..Default::default()
    };
    ms.create("m1", opts, None).unwrap();
    (ms, "m1".into())
}

/// Moves the call's start `ms` milliseconds into the past.
fn rewind(ms: &Meetings, id: &str, by_ms: u64) {
    let mut map = ms.map.lock().unwrap();
    let m = map.get_mut(id).unwrap();
    let start = m.call_started.expect("the call started");
    m.call_started = Some(start.checked_sub(Duration::from_millis(by_ms)).unwrap());
}

fn names(v: &SelfView) -> Vec<&str> {
    v.participants.iter().map(|p| p.name.as_str()).collect()
}

#[test]
fn the_call_starts_when_the_first_guest_is_in() {
    let (ms, id) = meeting(Admission::Manual);
    let (pid, secret) = ms.knock(&id, "Bot").unwrap();
    let v = ms.poll(&id, &pid, &secret).unwrap();
    assert_eq!(v.elapsed_ms, None);
    assert!(
        v.participants.is_empty() && v.chat.is_empty(),
        "lobby sees nothing"
    );
    assert_eq!(ms.view(&id).unwrap().elapsed_ms, None);
    ms.set_state(
        &id,
        "Bot",
        &[ParticipantState::Lobby],
        ParticipantState::Admitted,
    )
    .unwrap();
    let v = ms.poll(&id, &pid, &secret).unwrap();
    assert!(v.elapsed_ms.unwrap() < 1000);
    assert_eq!(names(&v), ["Host", "Bot"]);
    assert!(v.participants[0].host && !v.participants[1].host);
    let view = ms.view(&id).unwrap();
    assert!(view.script.is_none(), "hosts only: no script");
    assert!(view.elapsed_ms.is_some());
    // A later guest does not restart the clock.
    rewind(&ms, &id, 5000);
    ms.knock(&id, "Second").unwrap();
    ms.set_state(
        &id,
        "Second",
        &[ParticipantState::Lobby],
        ParticipantState::Admitted,
    )
    .unwrap();
    assert!(ms.poll(&id, &pid, &secret).unwrap().elapsed_ms.unwrap() >= 5000);
}

#[test]
fn the_roster_follows_the_script() {
    let (ms, id) = scripted("demo");
    let before = ms.view(&id).unwrap();
    let present: Vec<_> = before.participants.iter().map(|p| &p.name).collect();
    assert_eq!(present, ["Alice", "Bob"], "there from the start");
    let (pid, secret) = ms.knock(&id, "Bot").unwrap();
    let v = ms.poll(&id, &pid, &secret).unwrap();
    assert_eq!(names(&v), ["Alice", "Bob", "Bot"]);
    let alice = v.participants[0].id.clone();
    assert!(v.participants.iter().any(|p| p.id == pid && !p.host));

    rewind(&ms, &id, 3000);
    let v = ms.poll(&id, &pid, &secret).unwrap();
    assert!((3000..4000).contains(&v.elapsed_ms.unwrap()));
    assert_eq!(names(&v), ["Alice", "Bob", "Carol", "Bot"]);
    assert_eq!(v.participants[0].id, alice, "scripted ids are stable");
    assert!(v.chat.is_empty());

    rewind(&ms, &id, 1500);
    let v = ms.poll(&id, &pid, &secret).unwrap();
    assert_eq!(v.chat.len(), 1);
    assert_eq!(v.chat[0].sender, "Bob");
    assert_eq!(v.chat[0].at_ms, 4000);
    let chat_id = v.chat[0].id.clone();

    rewind(&ms, &id, 5000);
    let v = ms.poll(&id, &pid, &secret).unwrap();
    assert_eq!(names(&v), ["Alice", "Bob", "Bot"], "Carol left at 9 s");
    assert_eq!(v.chat.len(), 1);
    assert_eq!(v.chat[0].id, chat_id);

    // The host's hand reaches guests only.
    assert!(matches!(
        ms.set_state(
            &id,
            "Alice",
            &[ParticipantState::Admitted],
            ParticipantState::Removed
        ),
        Err(SandboxError::NotFound)
    ));
}

#[test]
fn the_host_can_leave_and_scripts_can_be_empty() {
    let (ms, id) = scripted("leaves");
    let (pid, secret) = ms.knock(&id, "Bot").unwrap();
    assert_eq!(
        names(&ms.poll(&id, &pid, &secret).unwrap()),
        ["Host", "Bot"]
    );
    rewind(&ms, &id, 2000);
    assert_eq!(names(&ms.poll(&id, &pid, &secret).unwrap()), ["Bot"]);

    let (ms, id) = scripted("empty");
    let (pid, secret) = ms.knock(&id, "Bot").unwrap();
    assert_eq!(names(&ms.poll(&id, &pid, &secret).unwrap()), ["Bot"]);
    let view = ms.view(&id).unwrap();
    assert_eq!(view.script, Some(Script::default()));
}

#[test]
fn scripts_are_checked_when_a_meeting_is_made() {
    let ms = Meetings::default();
    let named = |name: &str| MeetingOptions {
        script: Some(name.into()),
        ..Default::default()
    };
    let Err(SandboxError::Invalid(why)) = ms.create("m1", named("nope"), None) else {
        panic!("an unknown script is refused");
    };
    assert!(why.contains("Unknown script \"nope\""), "{why}");
    assert!(matches!(
        ms.get_or_create("m1", named("nope")),
        Err(SandboxError::Invalid(_))
    ));
    assert!(matches!(ms.view("m1"), Err(SandboxError::NotFound)));

    // A custom script wins over a named one.
    let custom = Script {
        participants: vec![ScriptedParticipant {
            name: "Zoe".into(),
            join_ms: 0,
            leave_ms: None,
        }],
        ..Script::default()
    };
    let view = ms
        .create("m1", named("demo"), Some(custom.clone()))
        .unwrap();
    assert_eq!(view.script, Some(custom));
    assert_eq!(view.participants[0].name, "Zoe");
    assert_eq!(view.clip_ms["alice-1"], 3925);

    let mut bad = Script::builtin("demo").unwrap();
    bad.speech[0].clip = "nope".into();
    assert!(matches!(
        ms.create("m2", MeetingOptions::default(), Some(bad)),
        Err(SandboxError::Invalid(why)) if why.contains("Unknown clip")
    ));
    let too_many = MeetingOptions {
        corrupt_frames: 101,
        ..Default::default()
    };
    assert!(matches!(
        ms.create("m2", too_many, None),
        Err(SandboxError::Invalid(_))
    ));
}

#[test]
fn scripted_people_count_towards_a_full_meeting() {
    let ms = Meetings::default();
    let opts = MeetingOptions {
        hosts: (0..MAX_PARTICIPANTS).map(|i| format!("Host {i}")).collect(),
        ..Default::default()
    };
    ms.create("m1", opts, None).unwrap();
    assert!(matches!(ms.knock("m1", "Bot"), Err(SandboxError::Full)));
}
