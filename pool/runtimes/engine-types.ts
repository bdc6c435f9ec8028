// The JSON shapes of the Docker Engine API that warmpool sends and reads: only the fields it uses,
// from the Engine API reference (https://docs.docker.com/engine/api/v1.41/). Types only, no code.

/** Query filters as the engine takes them: `{ label: ['a=b'], status: ['running'] }`, sent as JSON. */
export type Filters = Record<string, string[]>;

export interface PortBinding {
  HostIp?: string;
  HostPort?: string;
}

/** One entry of GET /containers/json. No Config.Env: inspect for that. */
export interface ContainerInfo {
  Id: string;
  /** ["/name"] */
  Names: string[];
  Image: string;
  /** Unix seconds. */
  Created: number;
  /** "created" | "running" | "paused" | "restarting" | "removing" | "exited" | "dead" */
  State: string;
  /** Human text: "Up 3 seconds", "Exited (137) 2 seconds ago". */
  Status: string;
  Labels: Record<string, string>;
  Ports: Array<{ IP?: string; PrivatePort: number; PublicPort?: number; Type: string }>;
  HostConfig?: { NetworkMode?: string };
}

/** GET /containers/{id}/json. */
export interface InspectInfo {
  Id: string;
  /** "/name" */
  Name: string;
  /** RFC 3339. */
  Created: string;
  State: {
    Status: string;
    Running: boolean;
    Paused?: boolean;
    Restarting?: boolean;
    OOMKilled?: boolean;
    Dead?: boolean;
    Pid?: number;
    ExitCode: number;
    Error?: string;
    StartedAt?: string;
    FinishedAt?: string;
  };
  Config: {
    Image: string;
    Env: string[] | null;
    Labels: Record<string, string> | null;
    Cmd?: string[] | null;
    Tty?: boolean;
  };
  HostConfig: {
    NetworkMode: string;
    NanoCpus?: number;
    Memory?: number;
    RestartPolicy?: { Name: string; MaximumRetryCount?: number };
  };
  NetworkSettings: {
    Ports: Record<string, PortBinding[] | null> | null;
    Networks?: Record<string, unknown> | null;
  };
}

/** The body of POST /containers/create (the subset warmpool sets). */
export interface CreateOptions {
  Image: string;
  Cmd?: string[];
  Env?: string[];
  Labels?: Record<string, string>;
  Tty?: boolean;
  /** `{ "8080/tcp": {} }` */
  ExposedPorts?: Record<string, Record<string, never>>;
  HostConfig?: {
    NetworkMode?: string;
    RestartPolicy?: { Name: 'no' | 'always' | 'unless-stopped' | 'on-failure'; MaximumRetryCount?: number };
    /** CPU quota in units of 1e-9 CPUs. */
    NanoCpus?: number;
    /** Bytes. */
    Memory?: number;
    /** HostPort '' lets the engine pick a free port. */
    PortBindings?: Record<string, PortBinding[]>;
    AutoRemove?: boolean;
  };
}

/** The answer of POST /containers/create. */
export interface CreateResult {
  Id: string;
  Warnings: string[] | null;
}

/** GET /version (the fields worth logging). */
export interface VersionInfo {
  Version: string;
  ApiVersion: string;
  MinAPIVersion?: string;
  Os: string;
  Arch: string;
  KernelVersion?: string;
}

/** GET /images/{name}/json (the fields worth reading). */
export interface ImageInfo {
  Id: string;
  RepoTags: string[] | null;
  Created: string;
  Size: number;
}

/** One line of GET /events. `status` and `id` are the pre-1.22 names of Action and Actor.ID, still sent. */
export interface EngineEvent {
  Type?: string;
  Action?: string;
  status?: string;
  id?: string;
  /** Unix seconds. */
  time?: number;
  timeNano?: number;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}
