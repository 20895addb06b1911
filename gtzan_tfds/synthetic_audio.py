"""Synthetic songs in GTZAN's format: 22,050 Hz mono int16 clips, 10 genre classes.

The classes differ the way the genres do, not by one number: tempo, swing, drum patterns and
density, bass register and rhythm, chord style (pads, stabs, off-beat skanks, distorted power
chords, arpeggios, swung comping, strums), harmony, melody range and density, timbre
(harmonic roll-off, odd harmonics), distortion, background noise and dynamics.  Every song
draws its own values around its genre's (tempo, key, patterns re-drawn with fills, levels,
brightness, noise colour, recording low-pass, loudness), so neighbouring genres overlap
(rock/metal, pop/disco, blues/jazz/country) and a model has to combine cues.

A song is a pure function of (seed, genre, index): `numpy.random.default_rng([seed, genre,
index])` drives everything, so song k of a genre is the same whatever the dataset size, and the
generator is vectorised numpy (wavetable voices, drum templates added at onsets): about 50 ms
per 30 s song.
"""

from __future__ import annotations

import dataclasses
from typing import Union

import numpy as np
from scipy import signal

from core.audio import float_to_int16
from gtzan_tfds.constants import CLIP_SECONDS, GENRES, SAMPLE_RATE

_STEPS_PER_BAR = 16  # 16th notes in a 4/4 bar
_TABLE_SIZE = 2048  # wavetable length (power of two: phase wraps with a bit mask)
_NUM_HARMONICS = 16

_CHORDS = {
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "dom7": (0, 4, 7, 10),
    "min7": (0, 3, 7, 10),
    "maj7": (0, 4, 7, 11),
    "pow": (0, 7, 12),
}
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)
_DORIAN = (0, 2, 3, 5, 7, 9, 10)
_BLUES = (0, 3, 5, 6, 7, 10)
_PHRYGIAN = (0, 1, 3, 5, 7, 8, 10)
_MIXOLYDIAN = (0, 2, 4, 5, 7, 9, 10)
# Note decay (s) of each chord style: pads ring, reggae skanks are chopped short.
_CHORD_DECAY = {"pad": 3.0, "stab": 0.15, "skank": 0.09, "power": 0.35, "arp": 0.7,
                "comp": 0.35, "strum": 0.8}


@dataclasses.dataclass(frozen=True)
class GenreStyle:
    """A genre's central values; each song draws around them.

    Step patterns are 16 characters, one per 16th note of a bar; digit d is the probability d/9
    that the instrument plays on that step (a song draws its own pattern from them).
    """

    tempo: tuple[float, float]  # bpm mean, standard deviation
    swing: float  # where the off-beat 8th falls within the beat: 0.5 straight, 0.67 shuffle
    kick: str
    snare: str
    hat: str
    hat_decay: float  # s: 0.03 closed hat ... 0.4 ride / crash wash
    snare_noise: float  # 0 tonal crack ... 1 brushes / noisy
    kick_decay: float  # s; long = 808-style sub kick
    bass: str
    bass_register: float  # MIDI note of the bass root
    bass_decay: float  # s
    bass_brightness: float
    chord_style: str  # pad | stab | skank | power | arp | comp | strum
    chord_register: float  # MIDI note of the chord root
    progressions: tuple[tuple[tuple[int, str], ...], ...]  # (root semitones, chord) per bar
    scale: tuple[int, ...]
    melody_range: tuple[int, int]  # MIDI notes
    melody_density: float  # notes per beat
    brightness: float  # harmonic roll-off of chords/melody: 0.3 mellow ... 0.9 buzzy
    odd_harmonics: float  # 0 all harmonics (saw-like) ... 1 odd only (clarinet/square-like)
    note_decay: float  # s, chord and melody notes
    distortion: float  # tanh drive on the chord stem, 0 = clean
    noise_db: float  # background noise level, dB below full scale
    levels: tuple[float, float, float, float]  # drums, bass, chords, melody
    vibrato: float = 0.0  # melody vibrato depth (fraction of frequency)
    dynamics: float = 0.0  # depth of slow phrase-level swells (classical)


def _prog(*bars: str) -> tuple[tuple[int, str], ...]:
    """'0:dom7' -> (0, 'dom7') for each bar."""
    return tuple((int(b.split(":")[0]), b.split(":")[1]) for b in bars)


STYLES: dict[str, GenreStyle] = {
    "blues": GenreStyle(
        tempo=(88, 14), swing=0.66,
        kick="9000003090000030", snare="0000900000009000", hat="9090909090909090",
        hat_decay=0.08, snare_noise=0.5, kick_decay=0.2,
        bass="9000900090009000", bass_register=40, bass_decay=0.5, bass_brightness=0.5,
        chord_style="comp", chord_register=52,
        progressions=(_prog(*"0:dom7 0:dom7 0:dom7 0:dom7 5:dom7 5:dom7 0:dom7 0:dom7 7:dom7 "
                            "5:dom7 0:dom7 7:dom7".split()),
                      _prog("0:dom7", "5:dom7", "0:dom7", "7:dom7")),
        scale=_BLUES, melody_range=(55, 76), melody_density=1.2, brightness=0.6,
        odd_harmonics=0.3, note_decay=0.6, distortion=1.5, noise_db=-38,
        levels=(0.6, 0.8, 0.6, 0.8), vibrato=0.004,
    ),
    "classical": GenreStyle(
        tempo=(84, 22), swing=0.5,
        kick="0" * 16, snare="0" * 16, hat="0" * 16,
        hat_decay=0.1, snare_noise=0.5, kick_decay=0.2,
        bass="9000000090000000", bass_register=43, bass_decay=2.0, bass_brightness=0.45,
        chord_style="arp", chord_register=55,
        progressions=(_prog("0:maj", "5:maj", "7:maj", "0:maj"),
                      _prog("0:min", "5:min", "7:maj", "0:min"),
                      _prog("0:maj", "9:min", "2:min", "7:dom7")),
        scale=_MAJOR, melody_range=(62, 88), melody_density=1.6, brightness=0.45,
        odd_harmonics=0.1, note_decay=1.2, distortion=0.0, noise_db=-52,
        levels=(0.0, 0.6, 0.7, 0.9), vibrato=0.006, dynamics=0.5,
    ),
    "country": GenreStyle(
        tempo=(108, 12), swing=0.52,
        kick="9000000090000000", snare="0000900000009000", hat="9090909090909090",
        hat_decay=0.05, snare_noise=0.7, kick_decay=0.15,
        bass="9000000090000000", bass_register=40, bass_decay=0.4, bass_brightness=0.5,
        chord_style="strum", chord_register=55,
        progressions=(_prog("0:maj", "0:maj", "5:maj", "5:maj", "7:maj", "7:maj", "0:maj",
                            "0:maj"),
                      _prog("0:maj", "5:maj", "0:maj", "7:maj")),
        scale=_MAJOR, melody_range=(57, 79), melody_density=1.1, brightness=0.75,
        odd_harmonics=0.0, note_decay=0.3, distortion=0.2, noise_db=-44,
        levels=(0.5, 0.7, 0.8, 0.8), vibrato=0.002,
    ),
    "disco": GenreStyle(
        tempo=(120, 6), swing=0.5,
        kick="9000900090009000", snare="0000900000009000", hat="0090009000900090",
        hat_decay=0.2, snare_noise=0.4, kick_decay=0.18,
        bass="9090909090909090", bass_register=40, bass_decay=0.2, bass_brightness=0.6,
        chord_style="stab", chord_register=58,
        progressions=(_prog("0:min7", "5:min7"), _prog("0:min7", "10:maj", "8:maj7", "7:min7")),
        scale=_DORIAN, melody_range=(62, 84), melody_density=1.0, brightness=0.65,
        odd_harmonics=0.2, note_decay=0.5, distortion=0.0, noise_db=-48,
        levels=(0.9, 0.9, 0.6, 0.7), vibrato=0.004,
    ),
    "hiphop": GenreStyle(
        tempo=(90, 8), swing=0.57,
        kick="9000000900900000", snare="0000900000009000", hat="9595959595959595",
        hat_decay=0.04, snare_noise=0.5, kick_decay=0.6,
        bass="9000000900900000", bass_register=33, bass_decay=0.9, bass_brightness=0.1,
        chord_style="pad", chord_register=57,
        progressions=(_prog("0:min", "8:maj"), _prog("0:min7", "5:min7"),
                      _prog("0:min", "0:min", "3:maj", "10:maj")),
        scale=_MINOR, melody_range=(60, 76), melody_density=0.4, brightness=0.4,
        odd_harmonics=0.5, note_decay=0.8, distortion=0.0, noise_db=-40,
        levels=(1.0, 1.0, 0.4, 0.5),
    ),
    "jazz": GenreStyle(
        tempo=(138, 35), swing=0.66,
        kick="3000300030003000", snare="0010002000100002", hat="9000909990009099",
        hat_decay=0.35, snare_noise=0.9, kick_decay=0.15,
        bass="9000900090009000", bass_register=40, bass_decay=0.5, bass_brightness=0.35,
        chord_style="comp", chord_register=55,
        progressions=(_prog("2:min7", "7:dom7", "0:maj7", "0:maj7"),
                      _prog("9:min7", "2:min7", "7:dom7", "0:maj7")),
        scale=_MIXOLYDIAN, melody_range=(58, 82), melody_density=1.8, brightness=0.5,
        odd_harmonics=0.6, note_decay=0.5, distortion=0.0, noise_db=-44,
        levels=(0.45, 0.8, 0.5, 0.8), vibrato=0.003,
    ),
    "metal": GenreStyle(
        tempo=(172, 25), swing=0.5,
        kick="9797979797979797", snare="0000900000009000", hat="9090909090909090",
        hat_decay=0.3, snare_noise=0.4, kick_decay=0.1,
        bass="9999999999999999", bass_register=36, bass_decay=0.15, bass_brightness=0.7,
        chord_style="power", chord_register=40,
        progressions=(_prog("0:pow", "0:pow", "3:pow", "5:pow"), _prog("0:pow", "1:pow"),
                      _prog("0:pow", "5:pow", "3:pow", "1:pow")),
        scale=_PHRYGIAN, melody_range=(64, 88), melody_density=2.0, brightness=0.85,
        odd_harmonics=0.2, note_decay=0.3, distortion=9.0, noise_db=-34,
        levels=(0.9, 0.6, 0.9, 0.5), vibrato=0.005,
    ),
    "pop": GenreStyle(
        tempo=(112, 10), swing=0.5,
        kick="9000007090000000", snare="0000900000009000", hat="9090909090909090",
        hat_decay=0.05, snare_noise=0.4, kick_decay=0.2,
        bass="9000009090000090", bass_register=40, bass_decay=0.35, bass_brightness=0.45,
        chord_style="pad", chord_register=57,
        progressions=(_prog("0:maj", "7:maj", "9:min", "5:maj"),
                      _prog("9:min", "5:maj", "0:maj", "7:maj")),
        scale=_MAJOR, melody_range=(62, 81), melody_density=1.2, brightness=0.6,
        odd_harmonics=0.3, note_decay=0.7, distortion=0.3, noise_db=-56,
        levels=(0.8, 0.8, 0.5, 0.9), vibrato=0.005,
    ),
    "reggae": GenreStyle(
        tempo=(76, 8), swing=0.55,
        kick="0000000090000000", snare="0000000090000000", hat="9090909090909090",
        hat_decay=0.05, snare_noise=0.3, kick_decay=0.25,
        bass="9000003000900030", bass_register=38, bass_decay=0.6, bass_brightness=0.2,
        chord_style="skank", chord_register=57,
        progressions=(_prog("0:maj", "5:maj"), _prog("0:min", "5:min"),
                      _prog("0:maj", "7:maj", "5:maj", "5:maj")),
        scale=_MAJOR, melody_range=(60, 79), melody_density=0.6, brightness=0.55,
        odd_harmonics=0.3, note_decay=0.6, distortion=0.0, noise_db=-45,
        levels=(0.7, 1.0, 0.7, 0.6), vibrato=0.004,
    ),
    "rock": GenreStyle(
        tempo=(126, 16), swing=0.5,
        kick="9000003090900000", snare="0000900000009000", hat="9090909090909090",
        hat_decay=0.12, snare_noise=0.4, kick_decay=0.15,
        bass="9090909090909090", bass_register=40, bass_decay=0.25, bass_brightness=0.55,
        chord_style="power", chord_register=45,
        progressions=(_prog("0:pow", "5:pow", "7:pow", "5:pow"),
                      _prog("0:pow", "10:pow", "5:pow", "0:pow"),
                      _prog("0:maj", "7:maj", "5:maj", "5:maj")),
        scale=_MIXOLYDIAN, melody_range=(60, 84), melody_density=1.0, brightness=0.75,
        odd_harmonics=0.2, note_decay=0.5, distortion=4.0, noise_db=-40,
        levels=(0.8, 0.7, 0.8, 0.7), vibrato=0.004,
    ),
}
assert tuple(STYLES) == GENRES, "one style per genre, in GENRES order"


def generate_song(
    genre: Union[str, int],
    index: int,
    *,
    seed: int = 0,
    sr: int = SAMPLE_RATE,
    clip_seconds: float = CLIP_SECONDS,
) -> np.ndarray:
    """The synthetic song `index` of `genre`: int16 mono, `round(clip_seconds * sr)` samples."""
    song = generate_song_float(genre, index, seed=seed, sr=sr, clip_seconds=clip_seconds)
    return float_to_int16(song)


def song_id(genre: Union[str, int], index: int) -> str:
    """GTZAN's naming: ('blues', 42) -> 'blues.00042'."""
    name = GENRES[genre] if isinstance(genre, (int, np.integer)) else genre
    return f"{name}.{index:05d}"


def generate_song_float(
    genre: Union[str, int],
    index: int,
    *,
    seed: int = 0,
    sr: int = SAMPLE_RATE,
    clip_seconds: float = CLIP_SECONDS,
) -> np.ndarray:
    """As `generate_song`, as float32 in [-1, 1]."""
    g = GENRES.index(genre) if isinstance(genre, str) else int(genre)
    if not 0 <= g < len(GENRES):
        raise ValueError(f"genre index {g} out of range 0..{len(GENRES) - 1}")
    if index < 0 or seed < 0:
        raise ValueError(f"index and seed must be >= 0, got index={index}, seed={seed}")
    n = int(round(clip_seconds * sr))
    if n <= 0:
        raise ValueError(f"clip_seconds must be positive, got {clip_seconds}")
    rng = np.random.default_rng([seed, g, index])
    return _Song(STYLES[GENRES[g]], rng, n, sr).render()


class _Song:
    """Draws one song's parameters from its genre style and renders the mix."""

    def __init__(self, style: GenreStyle, rng: np.random.Generator, n: int, sr: int):
        self.style, self.rng, self.n, self.sr = style, rng, n, sr
        s = style
        self.tempo = float(np.clip(rng.normal(*s.tempo), 55, 230))
        self.key = int(rng.integers(-5, 7))  # semitones from the genre's register
        self.swing = float(np.clip(s.swing + rng.normal(0, 0.02), 0.5, 0.72))
        self.brightness = float(np.clip(s.brightness + rng.normal(0, 0.08), 0.15, 0.95))
        step = 60.0 / self.tempo / 4 * sr  # samples per 16th
        self.num_bars = int(np.ceil(n / (step * _STEPS_PER_BAR))) + 1
        # Onset (in samples) of every 16th step, with swing and timing jitter ("humanised").
        steps = np.arange(self.num_bars * _STEPS_PER_BAR)
        pos = steps * step
        within = steps % 4
        pos = pos + np.where(within == 2, (self.swing - 0.5) * 4 * step, 0.0)
        pos = pos + np.where(within % 2 == 1, (self.swing - 0.5) * 2 * step, 0.0)
        pos = pos + rng.normal(0, 0.003 * sr, pos.shape)
        self.step_onsets = np.maximum(np.rint(pos), 0).astype(np.int64)
        self.step_len = step
        prog = s.progressions[int(rng.integers(len(s.progressions)))]
        self.bar_chords = [prog[b % len(prog)] for b in range(self.num_bars)]

    # --- patterns -------------------------------------------------------------------------
    def _pattern(self, spec: str, fill_rate: float = 0.12, jitter: float = 0.08) -> np.ndarray:
        """(num_bars, 16) bool hits: a per-song bar drawn from `spec`, re-drawn on fill bars."""
        p = np.array([int(c) / 9 for c in spec])
        if not p.any():
            return np.zeros((self.num_bars, _STEPS_PER_BAR), bool)
        p = np.clip(p + self.rng.normal(0, jitter, p.shape) * (p > 0), 0, 1)
        base = self.rng.random(_STEPS_PER_BAR) < p
        if not base.any():
            base[int(np.argmax(p))] = True
        bars = np.tile(base, (self.num_bars, 1))
        fills = self.rng.random(self.num_bars) < fill_rate
        bars[fills] = self.rng.random((int(fills.sum()), _STEPS_PER_BAR)) < p
        return bars

    def _hits(self, bars: np.ndarray) -> np.ndarray:
        onsets = self.step_onsets[bars.reshape(-1)]
        return onsets[onsets < self.n]

    # --- instruments ----------------------------------------------------------------------
    def _drums(self) -> np.ndarray:
        s, rng, sr = self.style, self.rng, self.sr
        out = np.zeros(self.n, np.float32)
        if not (any(c != "0" for c in s.kick + s.snare + s.hat)):
            return out
        t = np.arange(int(0.8 * sr), dtype=np.float32) / sr
        kick_decay = s.kick_decay * rng.uniform(0.7, 1.3)
        f0, f1 = rng.uniform(90, 160), rng.uniform(40, 60)
        kick_phase = 2 * np.pi * np.cumsum(f1 + (f0 - f1) * np.exp(-t / 0.03)) / sr
        kick = np.sin(kick_phase) * np.exp(-t / kick_decay)
        noise = rng.standard_normal(t.size, dtype=np.float32)
        sn_decay = rng.uniform(0.08, 0.16)
        snare = (s.snare_noise * noise * np.exp(-t / sn_decay)
                 + (1 - s.snare_noise) * np.sin(2 * np.pi * rng.uniform(160, 230) * t)
                 * np.exp(-t / 0.06))
        hat_noise = np.diff(rng.standard_normal(t.size + 1, dtype=np.float32))  # high-passed
        hat = 0.35 * hat_noise * np.exp(-t / (s.hat_decay * rng.uniform(0.7, 1.4)))
        for spec, tpl, gain in ((s.kick, kick, 1.0), (s.snare, snare, 0.7), (s.hat, hat, 0.5)):
            onsets = self._hits(self._pattern(spec))
            vel = gain * rng.uniform(0.65, 1.0, onsets.size).astype(np.float32)
            for o, v in zip(onsets, vel):
                m = min(tpl.size, self.n - o)
                out[o : o + m] += v * tpl[:m]
        return out

    def _bass(self) -> np.ndarray:
        s, rng = self.style, self.rng
        bars = self._pattern(s.bass, fill_rate=0.2)
        idx = np.flatnonzero(bars.reshape(-1))
        onsets = self.step_onsets[idx]
        keep = onsets < self.n
        idx, onsets = idx[keep], onsets[keep]
        bar_of = idx // _STEPS_PER_BAR
        roots = np.array([self.bar_chords[b][0] for b in bar_of], float)
        fifths = np.array([_CHORDS[self.bar_chords[b][1]][2] for b in bar_of], float)
        # Mostly the root; sometimes the fifth or the octave; walking lines add scale tones.
        choice = rng.random(onsets.size)
        midi = s.bass_register + self.key + roots
        midi = np.where(choice > 0.6, midi + fifths, midi)
        midi = np.where(choice > 0.8, midi + 12 - fifths, midi)
        if s.bass.count("9") >= 4:
            walk = s.bass_register + self.key + rng.choice(np.array(s.scale), onsets.size)
            midi = np.where(choice > 0.9, walk, midi)
        amps = rng.uniform(0.7, 1.0, onsets.size)
        table = _wavetable(s.bass_brightness, 0.3, rng)
        return self._voice(onsets, midi, amps, 0.005, s.bass_decay, table)

    def _chord_mask(self) -> str:
        """The step pattern of chord onsets, by chord style."""
        style, coin = self.style.chord_style, self.rng.random()
        return {
            "pad": "9000000000000000",  # one sustained chord a bar
            "stab": "0090009000900090" if coin < 0.5 else "9009009000900900",
            "skank": "0000900000009000" if coin < 0.3 else "0090009000900090",  # off-beats
            "power": "9999999999999999" if self.tempo < 140 else "9090909090909090",
            "arp": "9090909090909090",
            "comp": "0030020030002003",  # sparse, syncopated
            "strum": "9000900090009000",
        }[style]

    def _chords(self) -> np.ndarray:
        s, rng = self.style, self.rng
        bars = self._pattern(self._chord_mask(), fill_rate=0.1, jitter=0.05)
        if s.chord_style == "power":
            bars &= rng.random(bars.shape) < 0.85  # palm-muted gaps
        steps = np.flatnonzero(bars.reshape(-1))
        steps = steps[self.step_onsets[steps] < self.n]
        if steps.size == 0:
            return np.zeros(self.n, np.float32)
        onsets = self.step_onsets[steps]
        vel = rng.uniform(0.6, 1.0, steps.size)
        chords = [self.bar_chords[b] for b in steps // _STEPS_PER_BAR]
        roots = s.chord_register + self.key + np.array([root for root, _ in chords], float)
        tones = [_CHORDS[quality] for _, quality in chords]
        table = _wavetable(self.brightness, s.odd_harmonics, rng)
        decay = _CHORD_DECAY[s.chord_style] * rng.uniform(0.75, 1.3)
        attack = 0.08 if s.chord_style == "pad" else 0.004
        if s.chord_style == "arp":  # one voice walking up and down the chord, octave every bar
            walk = (0, 1, 2, 1, 0, 2, 1, 2)
            offsets = [t[walk[i % 8] % len(t)] + 12 * (i % 16 >= 8) for i, t in enumerate(tones)]
            return self._voice(onsets, roots + np.array(offsets), vel, attack, decay, table)
        out = np.zeros(self.n, np.float32)
        num_voices = max(len(t) for t in tones)
        for v in range(num_voices):
            midi = roots + np.array([t[min(v, len(t) - 1)] for t in tones], float)
            # Strums spread the voices over a few ms; everything else strikes together.
            delay = int(v * 0.012 * self.sr) if s.chord_style == "strum" else 0
            out += self._voice(np.minimum(onsets + delay, self.n - 1), midi,
                               vel / np.sqrt(num_voices), attack, decay, table)
        if s.distortion > 0:
            drive = s.distortion * rng.uniform(0.6, 1.4)
            peak = np.max(np.abs(out)) or 1.0
            out = np.tanh(drive * out / peak).astype(np.float32) * peak
        return out

    def _melody(self) -> np.ndarray:
        s, rng = self.style, self.rng
        density = s.melody_density * rng.uniform(0.7, 1.3)
        p = np.full(_STEPS_PER_BAR, density / 4)
        p[::4] *= 1.6  # notes favour the beats
        p = np.tile(np.clip(p, 0, 1), self.num_bars)
        steps = np.flatnonzero(rng.random(p.size) < p)
        onsets = self.step_onsets[steps]
        keep = onsets < self.n
        steps, onsets = steps[keep], onsets[keep]
        if onsets.size == 0:
            return np.zeros(self.n, np.float32)
        lo, hi = s.melody_range
        scale = np.array(s.scale)
        pitches = np.concatenate([scale + 12 * o for o in range(-1, 9)]) + self.key + 48
        pitches = pitches[(pitches >= lo) & (pitches <= hi)]
        moves = rng.choice(np.array([-3, -2, -1, -1, 0, 1, 1, 2, 3]), steps.size)
        pos = np.cumsum(moves) + pitches.size // 2
        if pitches.size > 1:  # reflect the random walk at the ends of the range
            period = 2 * (pitches.size - 1)
            pos = pos % period
            pos = np.where(pos >= pitches.size, period - pos, pos)
        else:
            pos = np.zeros_like(pos)
        midi = pitches[pos].astype(float)
        # Phrases: the melody rests for whole bars now and then.
        bar_on = rng.random(self.num_bars) < rng.uniform(0.55, 0.9)
        amps = rng.uniform(0.6, 1.0, steps.size) * bar_on[steps // _STEPS_PER_BAR]
        table = _wavetable(self.brightness, s.odd_harmonics, rng)
        decay = s.note_decay * rng.uniform(0.7, 1.4)
        return self._voice(onsets, midi, amps, 0.01, decay, table, vibrato=s.vibrato)

    def _voice(self, onsets, midi, amps, attack, decay, table, vibrato=0.0) -> np.ndarray:
        """A monophonic wavetable line: note i sounds from onsets[i] until the next onset.

        Each note restarts its phase and is cut once its envelope has decayed below e**-7, so
        the cost is one short slice per note rather than whole-song gathers.
        """
        out = np.zeros(self.n, np.float32)
        order = np.argsort(onsets, kind="stable")
        onsets, midi, amps = onsets[order], np.asarray(midi)[order], np.asarray(amps)[order]
        onsets, first = np.unique(onsets, return_index=True)
        midi, amps = midi[first], amps[first]
        if onsets.size == 0:
            return out
        sr = self.sr
        max_len = int(min(self.n, (attack + 7 * decay) * sr))
        t = np.arange(max_len, dtype=np.float32)
        env = np.minimum(t * (1.0 / (attack * sr)), 1.0) * np.exp(t * (-1.0 / (decay * sr)))
        cycles = (440.0 / sr) * 2.0 ** ((midi - 69.0) / 12.0) * _TABLE_SIZE  # table steps/sample
        if vibrato:  # phase modulation equivalent to a sinusoidal frequency vibrato
            rate = self.rng.uniform(4.5, 6.5) * 2 * np.pi / sr
            wobble = ((1 - np.cos(rate * t)) * (vibrato / rate)).astype(np.float32)
        ends = np.minimum(np.append(onsets[1:], self.n), onsets + max_len)
        mask = _TABLE_SIZE - 1
        for o, e, c, a in zip(onsets.tolist(), ends.tolist(), cycles.tolist(), amps.tolist()):
            m = e - o
            if a == 0 or m <= 0:
                continue
            ph = t[:m] + wobble[:m] if vibrato else t[:m]
            wave = table[(ph * np.float32(c)).astype(np.int32) & mask]
            out[o:e] = wave * (env[:m] * np.float32(a))
        return out

    # --- mix ------------------------------------------------------------------------------
    def render(self) -> np.ndarray:
        s, rng, n, sr = self.style, self.rng, self.n, self.sr
        lv = np.array(s.levels) * rng.uniform(0.7, 1.3, 4)
        mix = (lv[0] * _norm(self._drums()) + lv[1] * _norm(self._bass())
               + lv[2] * _norm(self._chords()) + lv[3] * _norm(self._melody()))
        if s.dynamics:
            rate, phase = rng.uniform(0.03, 0.1), rng.uniform(0, 2 * np.pi)
            slow = np.sin(2 * np.pi * rate * np.arange(n) / sr + phase)
            mix *= (1 + s.dynamics * rng.uniform(0.5, 1.0) * slow).astype(np.float32)
        mix = _norm(mix)
        # Background noise with its own colour, then a "recording" low-pass (radio, tape, CD).
        noise = rng.standard_normal(n, dtype=np.float32)
        a = rng.uniform(0.0, 0.95)
        noise = signal.lfilter(np.float32([1 - a]), np.float32([1, -a]), noise)
        noise_db = s.noise_db + rng.normal(0, 4)
        mix += 10 ** (noise_db / 20) * noise / (np.std(noise) + 1e-9)
        cutoff = rng.uniform(3500, 10000)
        b, a_ = signal.butter(2, cutoff / (sr / 2))
        mix = signal.lfilter(b.astype(np.float32), a_.astype(np.float32), mix.astype(np.float32))
        return (_norm(mix) * rng.uniform(0.45, 0.95)).astype(np.float32)


def _wavetable(brightness: float, odd: float, rng: np.random.Generator) -> np.ndarray:
    """One period of a tone: harmonic k at brightness**(k-1), even harmonics scaled by 1-odd."""
    k = np.arange(1, _NUM_HARMONICS + 1)
    amp = brightness ** (k - 1) * np.where(k % 2 == 0, 1 - odd, 1.0)
    amp *= rng.uniform(0.8, 1.2, k.size)
    phase = rng.uniform(0, 2 * np.pi, k.size)
    x = 2 * np.pi * np.arange(_TABLE_SIZE) / _TABLE_SIZE
    table = (amp[:, None] * np.sin(k[:, None] * x[None, :] + phase[:, None])).sum(axis=0)
    return (table / np.max(np.abs(table))).astype(np.float32)


def _norm(x: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return x / peak if peak > 0 else x
