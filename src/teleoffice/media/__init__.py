"""Media: RTP relay and media endpoint (tones, prompts, recording, DTMF).

The pure modules (`rtp`, `g711`, `dtmf`, `tones`, `sources`, `pacing`, `playout`,
`analysis`, `wavfile`) never read a clock or touch a socket; `ports`, `session`
and `engine` are the thin asyncio layer on top.  The call code talks to
`engine.MediaEngine` and `session.MediaSession` only, so an external relay
(rtpengine) can later sit behind the same interface.  `relaybench` measures the
relay (``python -m teleoffice.media.relaybench``).
"""
