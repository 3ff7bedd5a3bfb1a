"""qnet's Gymnasium bridge, the Python side: one worker process holding `n` envs of one
Gymnasium environment, stepped by qnet (src/env/gym/) through shared memory.

qnet starts it as `python -c <this file> FDS`, where FDS are five file descriptors it
inherits: control requests in (JSON lines), control replies out (length-prefixed JSON, then
an optional length-prefixed blob), a wake-up pipe in, a wake-up pipe out, and the shared
memory (a memfd that qnet sizes once it knows the environment's spaces).

Shared memory (little-endian), as src/env/gym/layout.rs lays it out:
  header, one 64-byte line per field: request sequence and operation (qnet), reply
  sequence and status (worker), worker sleeping, qnet sleeping;
  then actions (n x int64), observations and final observations (n x obs_size x float32
  each), rewards (n x float64), terminated and truncated (n x uint8 each).
A step: qnet writes the actions, then the operation and a new request sequence; the worker
steps every env (resetting, in the same step, those whose episode ended and keeping the
observation that ended it), writes the results, then the reply sequence. Each side spins a
little before it sleeps on its wake-up pipe, so a step costs no system call while both are
busy.
"""

import sys

# Never import from the current directory (Python puts it first on the path for `-c`): a run
# directory someone else wrote may hold modules. The user's PYTHONPATH is kept.
if sys.path and sys.path[0] in ("", "."):
    del sys.path[0]

import json
import mmap
import os
import select
import struct
import traceback

OP_STEP = 1
OP_CONTROL = 2
STATUS_OK = 0
STATUS_ERROR = 1

# Byte offsets of the header words (uint64), one 64-byte line apart.
REQUEST, OPERATION, REPLY, STATUS, WORKER_SLEEPING, QNET_SLEEPING = (64 * i for i in range(6))
HEADER_WORDS = 48

# Looks at the shared memory before the worker sleeps on its wake-up pipe: SPINS looks in a
# tight loop (some 30 us), then YIELDS more that give the core away between looks (about
# 0.1 ms in all), longer than qnet takes between most steps.
SPINS = 150
YIELDS = 150


class Refused(Exception):
    """A request qnet's bridge cannot serve, in words for the user."""


def error_record(exc, op):
    frames = traceback.extract_tb(exc.__traceback__)
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "op": op,
        "where": [f"{f.filename}:{f.lineno} in {f.name}" for f in frames[-4:]],
    }


class Worker:
    def __init__(self, fds):
        ctl_in, ctl_out, wake_in, wake_out, shm = fds
        self.requests = os.fdopen(ctl_in, "rb")
        self.replies = ctl_out
        self.wake_in = wake_in
        self.wake_out = wake_out
        self.shm_fd = shm
        self.envs = []
        self.np = None
        self.header = None

    # Control channel.
    def reply(self, record, blob=None):
        data = json.dumps(record).encode()
        out = struct.pack("<I", len(data)) + data
        if blob is not None:
            out += struct.pack("<Q", len(blob)) + blob
        view = memoryview(out)
        while view:
            view = view[os.write(self.replies, view):]

    def read_request(self):
        line = self.requests.readline()
        if not line:
            raise SystemExit(0)
        return json.loads(line)

    # Requests.
    def make(self, request):
        import gymnasium as gym
        import numpy as np

        self.np = np
        env_id = request["id"]
        kwargs = request.get("kwargs") or {}
        limit = request.get("max_episode_steps")
        render_mode = request.get("render_mode")
        self.rendering = render_mode == "rgb_array"
        self.final_frames = {}
        options = dict(kwargs)
        if limit is not None:
            options["max_episode_steps"] = limit
        if render_mode is not None:
            options["render_mode"] = render_mode
        wrappers = [self.wrapper(entry) for entry in request.get("wrappers") or []]
        for _ in range(request["n"]):
            env = gym.make(env_id, **options)
            for cls, wrapper_kwargs in wrappers:
                env = cls(env, **wrapper_kwargs)
            self.envs.append(env)
        first = self.envs[0]
        obs_space, act_space = first.observation_space, first.action_space
        if not isinstance(obs_space, gym.spaces.Box):
            raise Refused(
                f"its observation space is {obs_space} ({type(obs_space).__name__}); qnet "
                "takes Box observations (floats or integers, any shape)"
            )
        if not isinstance(act_space, gym.spaces.Discrete):
            raise Refused(
                f"its action space is {act_space} ({type(act_space).__name__}); qnet "
                "takes Discrete actions"
            )
        spec = first.spec
        self.n = len(self.envs)
        self.obs_shape = tuple(int(d) for d in obs_space.shape)
        self.start = int(act_space.start)
        return {
            "ok": True,
            "spec": {
                "id": spec.id if spec is not None else env_id,
                "obs_shape": list(self.obs_shape),
                "obs_dtype": str(obs_space.dtype),
                "n_actions": int(act_space.n),
                "max_episode_steps": spec.max_episode_steps if spec is not None else None,
                "reward_threshold": spec.reward_threshold if spec is not None else None,
                "render_fps": first.metadata.get("render_fps"),
            },
        }

    def wrapper(self, entry):
        import importlib

        import gymnasium as gym

        path, kwargs = entry["class"], entry.get("kwargs") or {}
        module_name, _, name = path.rpartition(".")
        if not module_name:
            raise Refused(f"wrapper {path!r} is not a dotted path (module.Class)")
        cls = getattr(importlib.import_module(module_name), name, None)
        if not (isinstance(cls, type) and issubclass(cls, gym.Wrapper)):
            raise Refused(f"wrapper {path!r} is not a gymnasium.Wrapper class")
        return cls, kwargs

    def attach(self, request):
        np = self.np
        size = request["size"]
        self.mm = mmap.mmap(self.shm_fd, size)
        offsets = request["offsets"]
        n, shape = self.n, self.obs_shape
        self.header = np.frombuffer(self.mm, np.uint64, HEADER_WORDS, 0)
        self.actions = np.frombuffer(self.mm, np.int64, n, offsets["actions"])
        obs_size = int(np.prod(shape, dtype=np.int64))
        self.obs = np.frombuffer(self.mm, np.float32, n * obs_size, offsets["obs"])
        self.obs = self.obs.reshape((n,) + shape)
        self.final_obs = np.frombuffer(self.mm, np.float32, n * obs_size, offsets["final_obs"])
        self.final_obs = self.final_obs.reshape((n,) + shape)
        self.rewards = np.frombuffer(self.mm, np.float64, n, offsets["rewards"])
        self.terminated = np.frombuffer(self.mm, np.uint8, n, offsets["terminated"])
        self.truncated = np.frombuffer(self.mm, np.uint8, n, offsets["truncated"])
        return {"ok": True}

    def reset(self, request):
        seeds = request["seeds"]
        for i, env in enumerate(self.envs):
            obs, _ = env.reset(seed=seeds[i])
            self.obs[i] = obs
        return {"ok": True}

    def render(self, request):
        index = request["index"]
        frame = self.final_frames.pop(index, None)
        if frame is None:
            frame = self.envs[index].render()
        frame = self.np.ascontiguousarray(frame, self.np.uint8)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise Refused(f"its rgb_array render is an array of shape {frame.shape}, not HxWx3")
        return {"ok": True, "frame": list(frame.shape)}, frame.tobytes()

    def step(self):
        envs, start = self.envs, self.start
        actions, obs, final_obs = self.actions.tolist(), self.obs, self.final_obs
        rewards, terminated, truncated = self.rewards, self.terminated, self.truncated
        rendering = self.rendering
        if rendering:
            self.final_frames.clear()
        for i, env in enumerate(envs):
            o, r, te, tr, _ = env.step(actions[i] + start)
            rewards[i] = r
            terminated[i] = te
            truncated[i] = tr
            if te or tr:
                final_obs[i] = o
                if rendering:
                    # What the episode ended on, before the reset replaces it.
                    self.final_frames[i] = env.render()
                o, _ = env.reset()
            obs[i] = o

    # Waiting for qnet.
    def wait(self, last):
        header, request, sleeping = self.header, REQUEST // 8, WORKER_SLEEPING // 8
        for _ in range(SPINS):
            if header[request] != last:
                return int(header[request])
        for _ in range(YIELDS):
            if header[request] != last:
                return int(header[request])
            os.sched_yield()
        while True:
            header[sleeping] = 1
            if header[request] == last:
                ready, _, _ = select.select([self.wake_in], [], [], 0.05)
                if ready and not os.read(self.wake_in, 4096):
                    raise SystemExit(0)
            header[sleeping] = 0
            if header[request] != last:
                return int(header[request])

    def answer(self, seq, status):
        header = self.header
        header[STATUS // 8] = status
        header[REPLY // 8] = seq
        if header[QNET_SLEEPING // 8]:
            os.write(self.wake_out, b"w")

    def control(self, request):
        op = request.get("op")
        handler = {"attach": self.attach, "reset": self.reset, "render": self.render}.get(op)
        if op == "close":
            for env in self.envs:
                env.close()
            raise SystemExit(0)
        if handler is None:
            raise Refused(f"unknown request {op!r}")
        answer = handler(request)
        if isinstance(answer, tuple):
            self.reply(*answer)
        else:
            self.reply(answer)

    def serve(self):
        request = self.read_request()
        try:
            self.reply(self.make(request))
        except BaseException as exc:
            self.reply({"ok": False, "error": error_record(exc, "make")})
            raise SystemExit(1)
        # Until the shared memory is attached, requests come on the control channel alone.
        while self.header is None:
            request = self.read_request()
            try:
                self.control(request)
            except SystemExit:
                raise
            except BaseException as exc:
                self.reply({"ok": False, "error": error_record(exc, request.get("op"))})
        last = 0
        while True:
            last = self.wait(last)
            op = int(self.header[OPERATION // 8])
            if op == OP_STEP:
                try:
                    self.step()
                except BaseException as exc:
                    self.answer(last, STATUS_ERROR)
                    self.reply({"ok": False, "error": error_record(exc, "step")})
                    continue
                self.answer(last, STATUS_OK)
            else:
                request = self.read_request()
                try:
                    self.control(request)
                    status = STATUS_OK
                except SystemExit:
                    raise
                except BaseException as exc:
                    self.reply({"ok": False, "error": error_record(exc, request.get("op"))})
                    status = STATUS_ERROR
                self.answer(last, status)


if __name__ == "__main__":
    Worker([int(fd) for fd in sys.argv[1:6]]).serve()
