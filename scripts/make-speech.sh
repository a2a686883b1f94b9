#!/usr/bin/env bash
# Regenerates the sandbox meeting's speech clips, sandbox/assets/speech/*.ogg:
# each line below is spoken by espeak-ng (US English, 150 words a minute) and
# encoded as Ogg/Opus at 32 kb/s. The sandbox serves the clips at
# /media/<clip>.ogg and keeps their durations in sandbox/src/speech.rs: after
# changing a text, update that table (its unit test reads the files and says
# what it expects). Needs espeak-ng and opus-tools (Debian packages).
set -euo pipefail
cd "$(dirname "$0")/.."

out=sandbox/assets/speech
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

clip() {
  local name="$1" text="$2"
  espeak-ng -v en-us -s 150 -w "$tmp/$name.wav" "$text"
  # A fixed stream serial keeps the output the same from run to run.
  opusenc --quiet --bitrate 32 --serial 1 "$tmp/$name.wav" "$out/$name.ogg"
  opusinfo "$out/$name.ogg" | sed -n 's/^\s*Playback length: /'"$name"': /p'
}

clip alice-1 "Good morning everyone. Let's review the launch plan."
clip bob-1 "The release candidate passed every test yesterday."
clip alice-2 "Great, then we ship on Thursday."
clip carol-1 "I will write the announcement."
