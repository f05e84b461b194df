"""`python play.py` / `genie play`: play a world with the keyboard in a pygame window.

    python play.py --world bundles/world --prompt sketch.png          # any image, video or shard
    SDL_VIDEODRIVER=dummy python play.py --world bundles/world --keys 1,1,left,r,2 --record out.gif

Keys
  1-8             latent action 0-7 (those the world has)
  arrows / WASD   left, right, up, down; space jump; N a frame of the no-op action: the latent
                  actions of the key map (genie/play/keymap.py: stored with the bundle by `genie keymap`,
                  --keymap FILE overrides it, else computed from the model at start)
  T               step mode (default: one key press, one frame) <-> real-time mode (the world
                  steps at --fps with the held key's action, the no-op action when none is held)
  R               reset to the prompt (same seed: the same keys replay the same frames)
  P pause   H HUD (mode, step, context, action, fps, key map)   F12 or Ctrl+S screenshot PNG
  Esc or closing the window quits. (S is down, as in WASD, so the screenshot is F12 / Ctrl+S.)

--keys plays a script without waiting for input, then quits: each comma-separated token is a key
name (1-8, left/right/up/down/space, w/a/s/d, n or noop, r, p, t, h, f12, escape) posted as a real
pygame KEYDOWN event, one token per loop tick (in real-time mode the key is held for that tick).
--record writes every world frame shown (the prompt, one per step, the prompt again after each
reset), upscaled by --scale, to a GIF or an MP4. Frames come from genie.World reset/step only.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from data_pipeline.ingest import read_prompt_frames
from genie.arguments import (
    Parser,
    add_sampler_arguments,
    count,
    float_at_least,
    int_at_least,
    out_dir,
    out_file,
    positive_int,
    run_reporting,
)
from genie.bundle import bundle_prompts
from genie.errors import GenieError

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # before pygame is imported
DEFAULT_WORLD = Path(__file__).resolve().parents[2] / "worlds" / "coinrun"
MOVES = {"left": ("left", "a"), "right": ("right", "d"), "up": ("up", "w"), "down": ("down", "s"),
         "jump": ("space",), "noop": ("n",)}  # key map entry -> the pygame key names that play it
CONTROLS = ("r", "p", "t", "h", "f12", "escape", "ctrl+s")


# ---------------------------------------------------------------------- keys
def parse_keys(text: str, num_actions: int) -> list[tuple[int, int]]:
    """'1,left,noop,r' -> [(pygame key, modifier)]; GenieError for unknown or out-of-range keys."""
    import pygame as pg

    open_display(pg)  # key_code needs the video system
    allowed = [str(i) for i in range(1, 9)] + [k for names in MOVES.values() for k in names] + ["noop", *CONTROLS]
    script = []
    for token in (t.strip().lower() for t in text.split(",")):
        name = {"noop": "n", "esc": "escape", "jump": "space"}.get(token, token)
        if name not in allowed:
            raise GenieError(f"--keys: unknown key {token!r}; use {', '.join(allowed)}")
        if name.isdigit() and int(name) > num_actions:
            raise GenieError(f"--keys: key {name} is latent action {int(name) - 1}, but this world has "
                             f"{num_actions} (keys 1-{num_actions})")
        ctrl = name.startswith("ctrl+")
        script.append((pg.key.key_code(name.removeprefix("ctrl+")), pg.KMOD_CTRL if ctrl else 0))
    return script


def player_keymap(world, bundle: Path, prompt: np.ndarray, keymap_file: str | None, log=print) -> dict[str, int]:
    """The bundle's key map, overridden by --keymap FILE; keys still missing come from the model."""
    from genie.play.keymap import KEYS, bundle_keymap, format_keymap, model_keymap, read_keymap_file

    keymap = bundle_keymap(bundle, getattr(world, "bundle_config", {}), world.num_actions) or {}
    if keymap_file:
        keymap.update(read_keymap_file(keymap_file, world.num_actions))
    if set(keymap) != set(KEYS):
        start = time.perf_counter()
        found, info = model_keymap(world, [prompt[-1], *bundle_prompts(bundle)[:3]], steps=3, seeds=1)
        keymap = {**found, **keymap}
        weak = f" (weak: {', '.join(info['weak'])})" if info["weak"] else ""
        log(f"play: {bundle.name} has no key map: computed one from the model in "
            f"{time.perf_counter() - start:.1f} s{weak}; store one with `genie keymap {bundle}`")
    keymap = {k: keymap[k] for k in KEYS}
    log(f"play: keys {format_keymap(keymap)}")
    return keymap


# ---------------------------------------------------------------------- the game loop
HEADLESS_DRIVERS = ("dummy", "offscreen")  # SDL video drivers that show no window


def open_display(pg) -> str:
    """Start pygame's display -> the video driver SDL started (e.g. x11, wayland, dummy)."""
    try:
        pg.display.init()
    except pg.error as err:
        raise GenieError(f"cannot open a window ({err}); to play headless set SDL_VIDEODRIVER=dummy and "
                         "pass --keys (and --record to see the frames)") from None
    return pg.display.get_driver()


class Player:
    """A pygame window over a World: key events in, World.reset/step, one frame drawn per step."""

    def __init__(self, world, prompt: np.ndarray, keymap: dict[str, int], seed: int = 0, scale: int = 6,
                 fps: float = 15.0, realtime: bool = False, hud: bool = True, shots: str = ".",
                 title: str = "genie"):
        import pygame as pg
        import torch

        self.pg, self.world, self.prompt, self.keymap, self.seed = pg, world, prompt, keymap, seed
        self.fps, self.realtime, self.hud, self.shots = fps, realtime, hud, Path(shots)
        open_display(pg)
        pg.font.init()
        h, w = world.frame_shape[:2]
        self.size = (w * scale, h * scale)
        self.screen = pg.display.set_mode(self.size)
        pg.display.set_caption(f"{title} - keys: 1-8, arrows/WASD/space, T real-time, R reset, H HUD")
        self.small = pg.Surface((w, h))
        self.font = pg.font.Font(None, max(14, 2 * scale + 6))
        self.clock = pg.time.Clock()
        self.pace = pg.display.get_driver() not in HEADLESS_DRIVERS  # headless runs flat out
        self.digits = {pg.key.key_code(str(i + 1)): i for i in range(8)}
        self.moves = {pg.key.key_code(k): move for move, keys in MOVES.items() for k in keys}
        # actions as tensors on the World's device: World.step checks numpy actions with a host sync
        self.actions = [torch.tensor([a], device=world.device) for a in range(world.num_actions)]
        self.prompt_len = min(len(prompt), world.sample.context - 1)  # what World.reset keeps
        self.frames: list[np.ndarray] = []  # every world frame shown, for --record
        self.held: list[int] = []  # real-time mode: step keys held down, the last pressed last
        self.steps = self.since_reset = 0
        self.step_time = self.total_step_time = 0.0
        self.action, self.paused, self.running, self.max_steps = None, False, True, None
        self.message, self.message_until = "", 0.0

    # ---- world
    def reset(self) -> None:
        self.show(self.world.reset(self.prompt[None], seed=self.seed)[0])
        self.since_reset, self.action = 0, None

    def step(self, action: int) -> None:
        start = time.perf_counter()
        frame = self.world.step(self.actions[action])[0]  # the loop's one host copy
        took = time.perf_counter() - start
        self.total_step_time += took
        self.step_time = took if self.steps == 0 else 0.9 * self.step_time + 0.1 * took
        self.steps, self.since_reset, self.action = self.steps + 1, self.since_reset + 1, action
        self.show(frame)
        if self.max_steps is not None and self.steps >= self.max_steps:
            self.running = False

    def show(self, frame: np.ndarray) -> None:
        self.frame = frame
        self.frames.append(frame)

    # ---- input
    def handle(self, event) -> None:
        pg = self.pg
        if not self.running:  # max_steps reached earlier in this batch of events
            return
        if event.type == pg.QUIT:
            self.running = False
        elif event.type == pg.KEYUP and event.key in self.held:
            self.held.remove(event.key)
        elif event.type == pg.KEYDOWN:
            self.key_down(event.key, event.mod)

    def key_down(self, key: int, mod: int) -> None:
        pg = self.pg
        if key == pg.K_ESCAPE:
            self.running = False
        elif key == pg.K_F12 or (key == pg.K_s and mod & pg.KMOD_CTRL):
            self.screenshot()
        elif key in (pg.K_r, pg.K_p, pg.K_t, pg.K_h):
            self.toggle(key)
        elif (action := self.action_of(key)) is not None:
            if self.realtime:
                self.held.append(key)
            elif self.paused:
                self.say("paused: P resumes")
            else:
                self.step(action)

    def toggle(self, key: int) -> None:
        pg = self.pg
        if key == pg.K_r:
            self.reset()
            self.say("reset to the prompt")
        elif key == pg.K_p:
            self.paused = not self.paused
        elif key == pg.K_t:
            self.realtime, self.held = not self.realtime, []
            self.say(f"real-time mode, {self.fps:g} fps" if self.realtime else "step mode")
        else:
            self.hud = not self.hud

    def action_of(self, key: int) -> int | None:
        if key in self.digits:
            if self.digits[key] < self.world.num_actions:
                return self.digits[key]
            self.say(f"this world has {self.world.num_actions} latent actions: keys 1-{self.world.num_actions}")
            return None
        return self.keymap[self.moves[key]] if key in self.moves else None

    def held_action(self) -> int:
        return self.action_of(self.held[-1]) if self.held else self.keymap["noop"]

    # ---- output
    def say(self, text: str) -> None:
        self.message, self.message_until = text, time.monotonic() + 2.0

    def draw(self) -> None:
        pg = self.pg
        pg.surfarray.blit_array(self.small, self.frame.swapaxes(0, 1))
        pg.transform.scale(self.small, self.size, self.screen)  # nearest neighbour
        if self.hud:
            self.draw_hud()
        pg.display.flip()

    def draw_hud(self) -> None:
        pg = self.pg
        mode = f"real-time {self.fps:g} fps" if self.realtime else "step mode"
        names = [k for k, a in self.keymap.items() if a == self.action]
        action = "-" if self.action is None else f"{self.action}" + (f" ({'/'.join(names)})" if names else "")
        context = min(self.prompt_len + self.since_reset, self.world.sample.context)
        fps = 1.0 / self.step_time if self.step_time else 0.0
        lines = [mode + ("  PAUSED" if self.paused else ""),
                 f"step {self.steps}  context {context}/{self.world.sample.context}",
                 f"action {action}  {fps:.1f} fps",
                 "keys " + " ".join(f"{k}={a}" for k, a in self.keymap.items())]
        if self.message and time.monotonic() < self.message_until:
            lines.append(self.message)
        texts = [self.font.render(line, True, (255, 255, 255)) for line in lines]
        box = pg.Surface((max(t.get_width() for t in texts) + 8, sum(t.get_height() for t in texts) + 6), pg.SRCALPHA)
        box.fill((0, 0, 0, 150))
        y = 3
        for text in texts:
            box.blit(text, (4, y))
            y += text.get_height()
        self.screen.blit(box, (0, 0))

    def screenshot(self) -> Path:
        import cv2

        self.draw()
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"genie-{time.strftime('%Y%m%d-%H%M%S')}-step{self.steps:05d}.png"
        n = 1
        while path.exists():
            path, n = path.with_name(f"{path.stem.split('~')[0]}~{n}.png"), n + 1
        image = self.pg.surfarray.array3d(self.screen).swapaxes(0, 1)
        if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise GenieError(f"{path}: could not write the screenshot")
        print(f"play: saved {path}")
        self.say(f"saved {path.name}")
        return path

    # ---- loop
    def run(self, script: list[tuple[int, int]] | None = None, max_steps: int | None = None) -> float:
        """Play until Esc / window close, `max_steps` world steps, or the end of `script` (keys posted
        as real KEYDOWN events, one per tick). Returns the seconds the loop ran."""
        pg = self.pg
        self.max_steps, self.running = max_steps, max_steps != 0
        start = time.perf_counter()
        self.reset()
        self.draw()
        script, held = (None if script is None else list(script)), None
        while self.running:
            if script is not None:
                if held is not None:  # real-time mode: a scripted key is held for one tick
                    pg.event.post(pg.event.Event(pg.KEYUP, key=held, mod=0))
                if not script:
                    break
                key, mod = script.pop(0)
                pg.event.post(pg.event.Event(pg.KEYDOWN, key=key, mod=mod))
                held = key if self.realtime else None
                if held is None:
                    pg.event.post(pg.event.Event(pg.KEYUP, key=key, mod=mod))
                events = pg.event.get()
            elif self.realtime:
                events = pg.event.get()
            else:
                events = [pg.event.wait(500), *pg.event.get()]  # step mode: sleep until a key
            for event in events:
                self.handle(event)
            if self.realtime and not self.paused and self.running:
                self.step(self.held_action())
            self.draw()
            if self.pace and (self.realtime or script is not None):
                self.clock.tick(self.fps)
        return time.perf_counter() - start

    def close(self) -> None:
        self.pg.display.quit()
        self.pg.font.quit()


# ---------------------------------------------------------------------- recording and the command
def write_recording(path: Path, frames: list[np.ndarray], scale: int, fps: float) -> None:
    """World frames uint8 [H,W,3] -> an animated GIF or an MP4 of them upscaled `scale` x."""
    import cv2

    from genie.play.sample import save_animation

    images = [f.repeat(scale, axis=0).repeat(scale, axis=1) for f in frames]
    if path.suffix.lower() == ".gif":
        save_animation(path, images, fps)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise GenieError(f"{path}: could not open an MP4 writer (opencv without ffmpeg?); record a .gif instead")
    for image in images:
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--world", help="world bundle (default: worlds/coinrun next to play.py)")
    parser.add_argument("--prompt", help="an image of any size, a video or GIF (first frames), or a dataset shard "
                        "(first episode); default: the bundle's prompts/*.png, else a gray frame")
    parser.add_argument("--prompt-frames", type=positive_int, help="frames of a video/shard prompt (default: the context)")
    add_sampler_arguments(parser, seed_help="world seed (R resets with the same seed; default 0)",
                          auto_precision="bf16 on CUDA and on a CPU that multiplies it natively, else fp32")
    parser.add_argument("--scale", type=int_at_least(1, 24), default=6,
                        help="window upscale factor, nearest neighbour, 1-24 (default 6)")
    parser.add_argument("--fps", type=float_at_least(0.0, strict=True, high=240.0), default=15.0,
                        help="real-time frame rate and recording rate (default 15)")
    parser.add_argument("--realtime", action="store_true", help="start in real-time mode (T toggles)")
    parser.add_argument("--record", type=out_file, help="write every frame shown to out.gif or out.mp4")
    parser.add_argument("--keys", help="play these keys, then quit, e.g. 1,1,left,noop,r,2 (no input is waited for)")
    parser.add_argument("--max-steps", type=count, help="quit after this many world steps")
    parser.add_argument("--keymap", help='JSON file {"left": 3, "right": 1, ...} overriding the key map')
    parser.add_argument("--shots", type=out_dir, default=".", help="folder for screenshots (default: the current one)")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's; 1 is steadier on a busy CPU)")
    parser.add_argument("--no-hud", action="store_true", help="start with the HUD hidden (H toggles)")


def play(args: argparse.Namespace, log=print) -> None:
    """Run the player with parsed `add_arguments` options; GenieError for anything the user can fix."""
    from genie.world import World, cpu_has_bf16, resolve_device

    if args.world is None and not DEFAULT_WORLD.exists():
        raise GenieError(f"no default world: {DEFAULT_WORLD} does not exist (no default world ships with genie "
                         "yet); pass a bundle with --world BUNDLE (README: 'Train a world')")
    record = Path(args.record) if args.record else None
    if record is not None and record.suffix.lower() not in (".gif", ".mp4"):
        raise GenieError(f"--record {record}: must end in .gif or .mp4")
    import pygame as pg

    driver = open_display(pg)  # the driver SDL actually started, not only what the environment asks for
    if driver in HEADLESS_DRIVERS and args.keys is None and (not args.realtime or args.max_steps is None):
        if os.environ.get("SDL_VIDEODRIVER") in HEADLESS_DRIVERS:
            raise GenieError(f"headless (SDL_VIDEODRIVER={driver}): nobody can press keys; pass --keys 1,2,... "
                             "or --realtime --max-steps N")
        raise GenieError(f"no display: SDL found no window system and fell back to its {driver!r} driver, so no "
                         "window can open; play on a desktop (or ssh -X), or headless with SDL_VIDEODRIVER=dummy "
                         "and --keys 1,2,... (--record out.gif to see the frames)")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    bundle = Path(args.world) if args.world else DEFAULT_WORLD
    precision = args.precision
    if precision == "auto" and resolve_device(args.device).type == "cpu" and cpu_has_bf16():
        precision = "bf16"  # one world at a time: 1.11x the fp32 step there, the same figures (RESULTS.md)
    world = World.load(bundle, device=args.device, steps=args.steps, temperature=args.temperature,
                       compile=args.compile, precision=precision, guidance=args.guidance, mbr=args.mbr)
    frames = args.prompt_frames or world.sample.context - 1
    shipped = bundle_prompts(bundle) if args.prompt is None else []
    if args.prompt is not None:
        prompt = read_prompt_frames(args.prompt, max(1, frames))
    elif shipped:
        prompt = shipped[0][None]
    else:
        log("play: no --prompt and the bundle ships no prompts/: starting from a gray frame")
        prompt = np.full((1, *world.frame_shape), 128, np.uint8)
    script = parse_keys(args.keys, world.num_actions) if args.keys is not None else None
    keymap = player_keymap(world, bundle, prompt, args.keymap, log)
    player = Player(world, prompt, keymap, seed=args.seed, scale=args.scale, fps=args.fps, realtime=args.realtime,
                    hud=not args.no_hud, shots=args.shots, title=f"genie: {bundle.name}")
    try:
        seconds = player.run(script, args.max_steps)
    finally:
        player.close()
    if player.steps:
        log(f"play: {player.steps} steps in {seconds:.2f} s: {player.steps / seconds:.1f} frames/s "
            f"(world step {1000 * player.total_step_time / player.steps:.1f} ms, {world.precision})")
    if record is not None:
        write_recording(record, player.frames, args.scale, args.fps)
        log(f"play: wrote {len(player.frames)} frames to {record}")


KEYS_HELP = "keys" + __doc__.split("Keys", 1)[1].split("--keys", 1)[0]


def main(argv: list[str] | None = None) -> int:
    """`python play.py ...`: returns the exit status (2 and one line on stderr for user errors)."""
    parser = Parser(prog="play.py", description="Play a genie world with the keyboard.",
                    epilog=KEYS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parsed = parser.parse_or_status(argv)
    if isinstance(parsed, int):
        return parsed
    args = parsed[0]
    return run_reporting("play", lambda: play(args))
