"""A tiny grid game with 8 known actions, vectorised over many games (pure numpy)."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from genie.errors import GenieError

ACTION_NAMES = ["noop", "left", "right", "up", "down", "red", "yellow", "blue"]
HOLD_KEYS = [1, 2, 0]  # --policy hold: left, right, noop
# facing: 0 left, 1 right, 2 up, 3 down. Per action: (dy, dx) move in cells, facing set (-1 keep),
# colour set (-1 keep; an index into _SPRITE_COLOURS)
_MOVES = np.array([(0, 0), (0, -1), (0, 1), (-1, 0), (1, 0), (0, 0), (0, 0), (0, 0)])
_FACING = np.array([-1, 0, 1, 2, 3, -1, -1, -1])
_COLOUR = np.array([-1, -1, -1, -1, -1, 0, 1, 2])
# sprite colours set by actions 5, 6, 7: red, yellow, blue
_SPRITE_COLOURS = np.array([(235, 40, 40), (250, 215, 30), (40, 100, 255)], dtype=np.uint8)
_WHITE = np.array((255, 255, 255), dtype=np.uint8)  # the nose, and the flash after a colour action
_BUMP = np.array((90, 220, 255), dtype=np.uint8)  # a wall cell flashes cyan when bumped into
# background scroll directions (dy, dx) of the texture's motion: left, right, up, down
_SCROLL_DIRS = np.array([(0, -1), (0, 1), (-1, 0), (1, 0)])


def check_size(size: int, grid: int = 16) -> None:
    """GenieError unless `size` gives whole cells of at least 2 px on a `grid` x `grid` board."""
    if size % grid or size < 2 * grid:
        raise GenieError(
            f"synthetic game --size {size} must be a multiple of {grid} and >= {2 * grid}, e.g. 64"
        )


class SyntheticGame:
    """B independent games on a G x G grid of cells, rendered to uint8 [B, H, W, 3] RGB frames.

    ## Screen
    A dark textured background (per-episode colours, 2-cell checker tiles and pixel noise),
    light-grey brick walls (a border ring plus a few random segments), and a one-cell sprite that
    is red, yellow or blue with a white one-pixel "nose" strip on the side it faces. Default 64x64
    (16x16 cells of 4 px); `size` must be a multiple of `grid` with cells of at least 2 px.
    The background texture scrolls behind the walls and the sprite: every step it moves `scroll`
    px (default 1; 0 keeps it still) left, right, up or down, one direction per game drawn at
    reset, whatever the action. The texture is periodic (it wraps around); walls, sprite and
    bump flashes stay on the cell grid.

    ## Actions (ACTION_NAMES)
    0 noop. 1 left, 2 right, 3 up, 4 down: move one cell and face that way; a move into a wall
    does not happen: the sprite faces that way and the wall cell flashes cyan for one frame.
    5 red, 6 yellow, 7 blue: set the sprite's colour (absolute, not a toggle), and the sprite
    flashes for one frame: every other pixel of its cell is white (a checkerboard, its nose still
    drawn over it), so the colour shows between the white pixels even in 2 px cells.
    `step(a)` applies a to the state shown by the previous frame and returns the next frame, so
    a_t changes frame t+1 and nothing before it.

    Every action is identifiable from frames t and t+1, from any state: a move shows as the sprite
    one cell that way, or, into a wall, as the cyan cell on that side of it; a colour action as the
    flash, and which one as the sprite's colour, both in frame t+1 alone (a repeated colour, e.g.
    red when already red, still flashes); noop as none of these. So the 8 next frames of any state
    differ pairwise (the scroll is the same for all 8, so they differ only where the action shows).
    There is no exception.

    ## Episodes
    `reset()` draws new walls, textures, scroll direction, start cell, facing and colour for every
    game from the game's own numpy Generator (deterministic under `seed`). There are no rewards or
    terminations; episodes last as long as the caller steps them.
    """

    action_names = ACTION_NAMES
    num_actions = len(ACTION_NAMES)

    def __init__(
        self, num_games: int = 1, size: int = 64, grid: int = 16, seed: int | None = 0, scroll: int = 1
    ):
        check_size(size, grid)
        if scroll < 0:
            raise GenieError(f"synthetic game scroll must be >= 0 px per frame, got {scroll}")
        self.num_games, self.size, self.grid, self.cell = num_games, size, grid, size // grid
        self.scroll = int(scroll)
        # texture period: the size rounded up to whole checker periods (4 cells), so it wraps
        self.period = -(-size // (4 * self.cell)) * 4 * self.cell
        self.rng = np.random.default_rng(seed)
        c = self.cell
        # pixel offsets of the nose strip inside a cell, per facing: [4, c] rows and cols
        edge, span = np.full(c, 0), np.arange(c)
        self._nose_dy = np.stack([span, span, edge, edge + c - 1])
        self._nose_dx = np.stack([edge, edge + c - 1, span, span])
        # the flash's white pixels inside a cell, a checkerboard: bool [1, c, c, 1]
        self._checker = (np.add.outer(span, span) % 2 == 0)[None, :, :, None]
        self.reset()

    def reset(self) -> np.ndarray:
        """Start a new episode in every game; returns the first frames uint8 [B, H, W, 3]."""
        b, g, rng = self.num_games, self.grid, self.rng
        yy, xx = np.mgrid[:g, :g]
        walls = np.zeros((b, g, g), dtype=bool)
        walls[:, [0, -1], :] = walls[:, :, [0, -1]] = True
        for _ in range(5):  # five random wall segments per game (vectorised over games)
            vertical = rng.random(b) < 0.5
            length = rng.integers(2, g // 3 + 1, b)
            h, w = np.where(vertical, length, 1), np.where(vertical, 1, length)
            y0, x0 = rng.integers(1, g - 1, b), rng.integers(1, g - 1, b)
            seg = (yy >= y0[:, None, None]) & (yy < (y0 + h)[:, None, None])
            walls |= seg & (xx >= x0[:, None, None]) & (xx < (x0 + w)[:, None, None])
        self.walls = walls  # bool [B, G, G]
        # start on a random free cell: argmax of noise over free cells
        score = np.where(walls, -1.0, rng.random((b, g, g))).reshape(b, -1).argmax(1)
        self.pos = np.stack([score // g, score % g], axis=1)  # int [B, 2] (y, x) cell
        self.facing = rng.integers(0, 4, b)
        self.colour = rng.integers(0, len(_SPRITE_COLOURS), b)
        self.flash = np.zeros(b, dtype=bool)  # did the last action set the colour?
        self.bumped = np.zeros(b, dtype=bool)  # did the last move hit a wall (at cell self.bump)?
        self.bump = self.pos.copy()
        self._draw_background()
        # texture velocity in px per frame (dy, dx) and offset: pixel (y, x) shows texel
        # ((y + offset_y) % period, (x + offset_x) % period)
        self.velocity = _SCROLL_DIRS[rng.integers(0, 4, b)] * self.scroll  # int [B, 2]
        self.offset = np.zeros((b, 2), dtype=np.int64)
        return self.render()

    def _draw_background(self) -> None:
        b, s, c, t, rng = self.num_games, self.size, self.cell, self.period, self.rng
        base = rng.integers(20, 90, (b, 1, 1, 3))
        tile = rng.integers(-25, 26, (b, 1, 1, 3))
        ty, tx = np.mgrid[:t, :t]
        checker = (((ty // (2 * c)) + (tx // (2 * c))) % 2)[None, :, :, None]  # [1, T, T, 1]
        noise = rng.integers(-10, 11, (b, t, t, 1))
        texture = np.clip(base + checker * tile + noise, 0, 255).astype(np.uint8)  # [B, T, T, 3]
        # tiled 2x2 so any window of s px at an offset < T is one slice: texture rows as bytes
        # [B * 2T, 2T * 3] (_background reads them through a view)
        self._tiled = np.tile(texture, (1, 2, 2, 1)).reshape(b * 2 * t, 2 * t * 3)
        py, px = np.mgrid[:s, :s]
        wall_px = self.walls.repeat(c, axis=1).repeat(c, axis=2)[..., None]  # [B, H, W, 1]
        mortar = ((py % c == 0) | (px % c == 0))[None, :, :, None]
        wall_rgb = rng.integers(165, 215, (b, 1, 1, 1)) - 45 * mortar
        # walls composite over the texture as frame = (texture & keep) | wall_img
        # (both full [B, H, W, 3] arrays: broadcasting a channel in the loop is ~50x slower)
        self._wall_img = np.where(wall_px, wall_rgb, 0).astype(np.uint8).repeat(3, axis=3)
        self._keep = np.where(wall_px, 0, 255).astype(np.uint8).repeat(3, axis=3)

    def _background(self) -> np.ndarray:
        """Scrolled texture with the walls over it: uint8 [B, H, W, 3] (a new array)."""
        b, s, t = self.num_games, self.size, self.period
        # every run of s px in a texture row as one opaque item (dtype V{3s}) [B * 2T, 2T * 3 - 3s + 1],
        # so a frame is a gather of H items, one per row. A view made per call (it is cheap), not
        # stored: copy.deepcopy of the game would turn a stored one into a copy ~s times the texture
        windows = sliding_window_view(self._tiled, s * 3, axis=1).view(f"V{s * 3}")[..., 0]
        rows = (np.arange(b) * 2 * t + self.offset[:, 0])[:, None] + np.arange(s)  # [B, H]
        runs = windows[rows, 3 * self.offset[:, 1, None]]  # [B, H] of V{3s}, a new array
        frames = runs.view(np.uint8).reshape(b, s, s, 3)
        np.bitwise_and(frames, self._keep, out=frames)
        np.bitwise_or(frames, self._wall_img, out=frames)
        return frames

    def render(self) -> np.ndarray:
        """The current frames: uint8 [B, H, W, 3] RGB."""
        c, frames = self.cell, self._background()
        bi = np.arange(self.num_games)
        top, left = self.pos[:, 0] * c, self.pos[:, 1] * c  # [B] pixel corner of the sprite cell
        rows = top[:, None] + np.arange(c)  # [B, c]
        cols = left[:, None] + np.arange(c)
        lit = self.flash[:, None, None, None] & self._checker  # [B, c, c, 1]
        sprite = np.where(lit, _WHITE, _SPRITE_COLOURS[self.colour][:, None, None])  # [B, c, c, 3]
        frames[bi[:, None, None], rows[:, :, None], cols[:, None, :]] = sprite
        ny = top[:, None] + self._nose_dy[self.facing]  # [B, c]
        nx = left[:, None] + self._nose_dx[self.facing]
        frames[bi[:, None], ny, nx] = _WHITE
        hit = bi[self.bumped]
        if len(hit):
            rows = self.bump[hit, 0, None] * c + np.arange(c)  # [b_hit, c]
            cols = self.bump[hit, 1, None] * c + np.arange(c)
            frames[hit[:, None, None], rows[:, :, None], cols[:, None, :]] = _BUMP
        return frames

    def step(self, actions: np.ndarray) -> np.ndarray:
        """Apply actions int [B] in 0..7; returns the next frames uint8 [B, H, W, 3]."""
        actions = np.asarray(actions)
        target = self.pos + _MOVES[actions]
        blocked = self.walls[np.arange(self.num_games), target[:, 0], target[:, 1]]
        self.pos = np.where(blocked[:, None], self.pos, target)
        self.bumped, self.bump = blocked, target
        self.facing = np.where(_FACING[actions] >= 0, _FACING[actions], self.facing)
        self.flash = _COLOUR[actions] >= 0
        self.colour = np.where(self.flash, _COLOUR[actions], self.colour)
        self.offset = (self.offset - self.velocity) % self.period  # the texture moves by velocity
        return self.render()


def record_synthetic(
    out,
    prefix: str,
    episodes: int,
    max_steps: int,
    seed: int,
    size: int = 64,
    sticky_mean: float = 2.0,
    frames_per_shard: int = 10_000,
    scroll: int = 1,
    policy: str = "sticky",
    log=print,
    resume: bool = False,
):
    """Record `episodes` episodes of `max_steps` frames each with a sticky random policy into
    `out/<prefix>-NNNNN.h5`; actions[t] is the action between frame t and t+1 (-1 on the last
    frame). `scroll` is the background's speed in px per frame (SyntheticGame). `policy`
    (policy.POLICIES): "sticky" and "uniform" both draw every action equally often; "hold" holds
    HOLD_KEYS (left, right, noop), one per episode. `resume`: finish an interrupted set (the episodes
already in its shards are generated again and skipped; ShardSetWriter). Returns RecordStats."""
    from data_pipeline.policy import make_policy, policy_source
    from data_pipeline.shards import RecordStats, ShardSetWriter, shard_logger

    rng = np.random.default_rng(seed)
    frame_bytes = size * size * 3
    batch = int(np.clip((256 << 20) // (max_steps * frame_bytes), 1, 64))  # games stepped together
    stats = RecordStats()
    with ShardSetWriter(
        out, prefix, fps=15.0, source=policy_source("synthetic", policy), action_names=ACTION_NAMES,
        frames_per_shard=frames_per_shard, resume=resume,
    ) as writer:  # fmt: skip
        writer.on_shard = shard_logger(log, episodes, writer.kept_episodes)
        done = 0
        while done < episodes:
            n = min(batch, episodes - done)
            game = SyntheticGame(n, size=size, seed=rng.integers(1 << 62), scroll=scroll)
            actor = make_policy(
                policy, n, np.full(len(ACTION_NAMES), 1 / len(ACTION_NAMES)), sticky_mean, HOLD_KEYS, rng
            )
            frames = np.empty((max_steps, n, size, size, 3), dtype=np.uint8)
            actions = np.full((max_steps, n), -1, dtype=np.int16)
            frames[0] = game.render()
            for t in range(max_steps - 1):
                actions[t] = actor()
                frames[t + 1] = game.step(actions[t])
            for i in range(n):
                writer.add_episode(frames[:, i], actions[:, i])
            done += n
    stats.add(writer)
    return stats
