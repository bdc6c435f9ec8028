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
    /** Relative CPU weight (cgroup cpu shares); 0: the engine's default, 1024. */
    CpuShares?: number;
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
    /** Relative CPU weight under contention (cgroup cpu shares, at least 2); unset: 1024. */
    CpuShares?: number;
    /** Bytes. */
    Memory?: number;
    /** HostPort '' lets the engine pick a free port. */
    PortBindings?: Record<string, PortBinding[]>;
    AutoRemove?: boolean;
  };
}

/** The body of POST /containers/{id}/update (the subset warmpool changes; the engine applies it to a running container). */
export interface UpdateOptions {
  CpuShares?: number;
}

/** The answer of POST /containers/{id}/update. */
export interface UpdateResult {
  Warnings: string[] | null;
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

// ---- Swarm (services, tasks, nodes): what runtimes/swarm.ts sends and reads ----

/** `{ Index }`: the service's version; an update must carry the index it read (compare-and-swap). */
export interface ObjectVersion {
  Index: number;
}

export interface ResourceSpec {
  /** CPU in units of 1e-9 CPUs. */
  NanoCPUs?: number;
  MemoryBytes?: number;
}

/** POST /services/create and /services/{id}/update body (the subset warmpool sets; read back whole). */
export interface ServiceSpec {
  Name: string;
  Labels?: Record<string, string>;
  TaskTemplate: {
    ContainerSpec: {
      Image: string;
      /** Overrides the image's CMD (as `docker run image args...`). */
      Args?: string[];
      Env?: string[];
      /** Labels on the task's container (so `docker ps --filter label=...` finds it). */
      Labels?: Record<string, string>;
      Init?: boolean;
      /** ns */
      StopGracePeriod?: number;
      [more: string]: unknown;
    };
    Resources?: { Limits?: ResourceSpec; Reservations?: ResourceSpec };
    /** warmpool always sets `none`: a restarted task has lost its executed notebook. */
    RestartPolicy?: { Condition: 'none' | 'on-failure' | 'any'; MaxAttempts?: number; Delay?: number; Window?: number };
    Placement?: {
      Constraints?: string[];
      Preferences?: Array<{ Spread: { SpreadDescriptor: string } }>;
      [more: string]: unknown;
    };
    /** `[{ Target: 'host' }]` or an overlay network's name or id (read back: an id). */
    Networks?: Array<{ Target: string; Aliases?: string[] }>;
    ForceUpdate?: number;
    [more: string]: unknown;
  };
  Mode?: { Replicated?: { Replicas: number } };
  /** `dnsrr`: no virtual IP (and no IPVS in the path). */
  EndpointSpec?: { Mode?: 'vip' | 'dnsrr'; [more: string]: unknown };
  [more: string]: unknown;
}

/** GET /services/{id} and one entry of GET /services. */
export interface ServiceInfo {
  ID: string;
  Version: ObjectVersion;
  CreatedAt: string;
  UpdatedAt: string;
  Spec: ServiceSpec;
}

/** swarmkit's task states, in order; a task with restart policy `none` ends in one of the last six. */
export type TaskState =
  | 'new'
  | 'allocated'
  | 'pending'
  | 'assigned'
  | 'accepted'
  | 'preparing'
  | 'ready'
  | 'starting'
  | 'running'
  | 'complete'
  | 'shutdown'
  | 'failed'
  | 'rejected'
  | 'remove'
  | 'orphaned';

/** One entry of GET /tasks. */
export interface TaskInfo {
  ID: string;
  Version: ObjectVersion;
  CreatedAt: string;
  ServiceID: string;
  NodeID?: string;
  Slot?: number;
  DesiredState: TaskState;
  Status: {
    Timestamp?: string;
    State: TaskState;
    /** "started", "pending task scheduling", ... */
    Message?: string;
    /** Why it is not running: "no suitable node (insufficient resources on 1 node)", "No such image: x", "task: non-zero exit (137)". */
    Err?: string;
    ContainerStatus?: { ContainerID?: string; PID?: number; ExitCode?: number };
  };
  /** Overlay networks: the task's own addresses ("10.0.1.5/24") per network. */
  NetworksAttachments?: Array<{ Network: { ID: string; Spec?: { Name?: string } }; Addresses?: string[] }>;
}

/** The answer of POST /services/create. */
export interface ServiceCreateResult {
  ID: string;
  Warnings?: string[] | null;
}

/** GET /info (the swarm part warmpool checks). */
export interface SystemInfo {
  ServerVersion?: string;
  Swarm?: {
    NodeID?: string;
    NodeAddr?: string;
    /** "inactive" | "pending" | "active" | "error" | "locked" */
    LocalNodeState?: string;
    ControlAvailable?: boolean;
    Nodes?: number;
  };
}
