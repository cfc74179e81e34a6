"""The MediaPipe 468-vertex face-mesh topology: triangles, hole filling, regions, subdivision.

MediaPipe publishes its face mesh only as an edge set (`FACEMESH_TESSELATION`, 2556 directed
edges = 1322 undirected ones). The triangles are recovered here as the 3-cycles of that graph,
minus the few 3-cycles that are not faces (a triangle with a vertex inside it, i.e. three faces
around a valence-3 vertex, is a 3-cycle but not a face). The result is a manifold surface of
852 triangles with four boundary loops -- the face outline, the two eye openings and the mouth
opening -- so its Euler characteristic is 468 - 1322 + 852 = -2 (a sphere minus four discs).
`face_mesh` fills the eye and mouth openings with strips of triangles (14 + 14 + 18 = 46, giving
898 triangles, a disc), so renders show the eyes and the closed lips,
and orients every triangle counter-clockwise seen from the front (+z of a y-up frame).
Given the left/right vertex correspondence (`mirror_permutation`), it also flips the six quad
diagonals where MediaPipe's triangulation is not mirror-symmetric and fills the holes
symmetrically, so that mirroring maps triangles to triangles (also after subdivision).

`subdivide` is midpoint subdivision (every triangle into four, new vertices at the edge
midpoints): new_vertices = S @ vertices for a sparse S, so any linear basis on the 468
vertices is carried exactly to the subdivided mesh.

MediaPipe is imported only inside the functions that need its tables (the build path); the
runtime model is the saved asset (`talkingjax.face3d.default`).
"""

from __future__ import annotations

import collections
import itertools

import numpy as np
import scipy.sparse

NUM_VERTICES = 468

# The widely used MediaPipe-468 -> 68-point (dlib / iBUG 300-W order) correspondence, checked
# by drawing it on portraits (assets/README.md): jaw 0-16 (image left to right), brows 17-26,
# nose bridge 27-30, nostrils 31-35, eyes 36-41 and 42-47 (each from its image-left corner,
# upper lid first), outer lips 48-59, inner lips 60-67. Fixed mesh vertices, like the BFM's.
LANDMARKS_68 = (
    162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389,
    71, 63, 105, 66, 107, 336, 296, 334, 293, 301,
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
    78, 82, 13, 312, 308, 317, 14, 87,
)  # fmt: skip

# Outer eye corners (the scale anchor of the default model) and the subject's right/left.
RIGHT_EYE_OUTER = 33
LEFT_EYE_OUTER = 263


def tesselation_edges() -> np.ndarray:
    """MediaPipe's face-mesh edges as a sorted [E, 2] int array (each undirected edge once)."""
    from mediapipe.python.solutions import face_mesh_connections as fc

    return _undirected(fc.FACEMESH_TESSELATION)


def region_vertices() -> dict[str, np.ndarray]:
    """Sorted vertex indices of MediaPipe's named regions (lips, eyes, eyebrows, oval)."""
    from mediapipe.python.solutions import face_mesh_connections as fc

    names = {
        "lips": fc.FACEMESH_LIPS,
        "left_eye": fc.FACEMESH_LEFT_EYE,
        "right_eye": fc.FACEMESH_RIGHT_EYE,
        "left_eyebrow": fc.FACEMESH_LEFT_EYEBROW,
        "right_eyebrow": fc.FACEMESH_RIGHT_EYEBROW,
        "face_oval": fc.FACEMESH_FACE_OVAL,
    }
    return {k: np.unique(np.asarray(sorted(v), np.int64)) for k, v in names.items()}


def _undirected(edges) -> np.ndarray:
    pairs = {(min(a, b), max(a, b)) for a, b in edges if a != b}
    return np.asarray(sorted(pairs), np.int64).reshape(-1, 2)


def faces_from_edges(edges: np.ndarray) -> np.ndarray:
    """The faces of a triangulated surface given only its edges: [F, 3] sorted index triples.

    Every 3-cycle of the edge graph is a candidate; a 3-cycle (a, b, c) around a vertex d that
    is joined to a, b and c only (three faces abd, bcd, cad filling it) is dropped.
    Raises ValueError if the result is not a manifold surface (an edge in > 2 faces).
    """
    edges = _undirected(np.asarray(edges).tolist())
    adj = collections.defaultdict(set)
    for a, b in edges:
        adj[a].add(b)
        adj[b].add(a)
    cycles = set()
    for a, b in edges:
        for c in adj[a] & adj[b]:
            cycles.add(tuple(sorted((a, b, c))))
    faces = []
    for a, b, c in sorted(cycles):
        # A vertex joined to exactly a, b and c sits inside the 3-cycle, which is then the
        # outline of the three faces around it rather than a face.
        inner = (adj[a] & adj[b] & adj[c]) - {a, b, c}
        if not any(adj[d] == {a, b, c} for d in inner):
            faces.append((a, b, c))
    faces = np.asarray(faces, np.int64).reshape(-1, 3)
    counts = edge_face_counts(faces)
    if counts and max(counts.values()) > 2:
        raise ValueError("edge set is not a manifold triangulation: an edge has > 2 faces")
    return faces


def edge_face_counts(triangles: np.ndarray) -> collections.Counter:
    """{(a, b) with a < b: number of triangles containing that edge}."""
    counts = collections.Counter()
    for tri in np.asarray(triangles).tolist():
        for a, b in itertools.combinations(tri, 2):
            counts[(min(a, b), max(a, b))] += 1
    return counts


def orient_consistently(triangles: np.ndarray) -> np.ndarray:
    """Reorders each triangle so neighbours traverse every shared edge in opposite directions.

    Breadth-first over the faces of each connected component, starting from its lowest-index
    face (kept as given). Raises ValueError for a non-orientable surface.
    """
    tris = [list(t) for t in np.asarray(triangles).tolist()]
    by_edge = collections.defaultdict(list)
    for f, t in enumerate(tris):
        for a, b in itertools.combinations(t, 2):
            by_edge[(min(a, b), max(a, b))].append(f)
    done = [False] * len(tris)
    for seed in range(len(tris)):
        if done[seed]:
            continue
        done[seed] = True
        queue = collections.deque([seed])
        while queue:
            f = queue.popleft()
            t = tris[f]
            for i in range(3):
                a, b = t[i], t[(i + 1) % 3]
                for g in by_edge[(min(a, b), max(a, b))]:
                    if g == f:
                        continue
                    # Consistent: g traverses the shared edge as b -> a.
                    agrees = _has_directed(tris[g], b, a)
                    if done[g]:
                        if not agrees:
                            raise ValueError("surface is not orientable")
                        continue
                    if not agrees:
                        tris[g] = tris[g][::-1]
                    done[g] = True
                    queue.append(g)
    return np.asarray(tris, np.int64).reshape(-1, 3)


def _has_directed(tri, a, b) -> bool:
    return any(tri[i] == a and tri[(i + 1) % 3] == b for i in range(3))


def is_consistently_oriented(triangles: np.ndarray) -> bool:
    """True if no directed edge occurs twice (neighbours traverse shared edges oppositely)."""
    directed = collections.Counter()
    for a, b, c in np.asarray(triangles).tolist():
        directed.update([(a, b), (b, c), (c, a)])
    return max(directed.values(), default=0) <= 1


def orient_front(triangles: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Flips all triangles (consistently oriented) if their area-weighted normal points to -z."""
    triangles = np.asarray(triangles, np.int64)
    v = np.asarray(vertices, np.float64)
    n = np.cross(v[triangles[:, 1]] - v[triangles[:, 0]], v[triangles[:, 2]] - v[triangles[:, 0]])
    return triangles[:, ::-1].copy() if n[:, 2].sum() < 0 else triangles


def boundary_loops(triangles: np.ndarray) -> list[list[int]]:
    """The boundary loops (edges in one face only) as vertex cycles, longest first.

    Each loop starts at its smallest vertex and follows the triangles' orientation (after
    `orient_consistently`, so any vertex order in the input is fine).
    """
    triangles = orient_consistently(triangles)
    counts = edge_face_counts(triangles)
    nxt = {}
    for a, b, c in triangles.tolist():
        for u, v in ((a, b), (b, c), (c, a)):
            if counts[(min(u, v), max(u, v))] == 1:
                if u in nxt:
                    raise ValueError(f"boundary is not a set of simple loops at vertex {u}")
                nxt[u] = v
    loops, seen = [], set()
    for start in sorted(nxt):
        if start in seen:
            continue
        loop, v = [], start
        while v not in seen:
            seen.add(v)
            loop.append(v)
            v = nxt[v]
        if v != start:
            raise ValueError("boundary edges do not close into loops")
        loops.append(loop)
    return sorted(loops, key=lambda loop: (-len(loop), loop[0]))


def euler_characteristic(triangles: np.ndarray, num_vertices: int | None = None) -> int:
    tris = np.asarray(triangles)
    nv = len(np.unique(tris)) if num_vertices is None else num_vertices
    return nv - len(edge_face_counts(tris)) + len(tris)


def is_manifold(triangles: np.ndarray) -> bool:
    """Every edge in 1 or 2 faces and every vertex's faces form one fan (disc or half-disc)."""
    tris = np.asarray(triangles).tolist()
    counts = edge_face_counts(tris)
    if max(counts.values(), default=0) > 2:
        return False
    around = collections.defaultdict(list)
    for t in tris:
        for v in t:
            around[v].append(tuple(u for u in t if u != v))
    for links in around.values():
        # The link of a vertex (edges opposite it) must be one path or one cycle.
        deg = collections.Counter(u for e in links for u in e)
        if any(d > 2 for d in deg.values()):
            return False
        adj = collections.defaultdict(list)
        for a, b in links:
            adj[a].append(b)
            adj[b].append(a)
        start = next(iter(adj))
        seen, stack = {start}, [start]
        while stack:
            for w in adj[stack.pop()]:
                if w not in seen:
                    seen.add(w)
                    stack.append(w)
        if len(seen) != len(deg):
            return False
    return True


def split_loop(loop: list[int], corner_a: int, corner_b: int) -> tuple[list[int], list[int]]:
    """The two chains of a loop from `corner_a` to `corner_b` (one each way round)."""
    i, j = loop.index(corner_a), loop.index(corner_b)
    n = len(loop)
    first = [loop[(i + k) % n] for k in range((j - i) % n + 1)]
    second = [loop[(i - k) % n] for k in range((i - j) % n + 1)]
    return first, second


def strip(chain_a: list[int], chain_b: list[int]) -> np.ndarray:
    """Triangulates the band between two chains that start together (same vertex or joined by
    an edge) and end together. The band advances along whichever chain is relatively behind
    (by the fraction of its length walked), so long thin holes such as eyes and the mouth get
    well-shaped triangles without any geometry. A triangle that would repeat a vertex (where
    the chains share their first or last vertex) is left out. Orientation is arbitrary.
    """
    tris, p, q = [], 0, 0
    na, nb = len(chain_a) - 1, len(chain_b) - 1
    while p < na or q < nb:
        if q >= nb or (p < na and (p + 1) / na <= (q + 1) / nb):
            tris.append((chain_a[p], chain_a[p + 1], chain_b[q]))
            p += 1
        else:
            tris.append((chain_a[p], chain_b[q + 1], chain_b[q]))
            q += 1
    tris = [t for t in tris if len(set(t)) == 3]
    return np.asarray(tris, np.int64).reshape(-1, 3)


def fill_loop(loop: list[int], corner_a: int, corner_b: int) -> np.ndarray:
    """Triangulates a hole bounded by `loop` [k vertices] as a strip between its two chains
    from corner a to corner b: k - 2 triangles."""
    return strip(*split_loop(loop, corner_a, corner_b))


def symmetrize(triangles: np.ndarray, mirror: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Makes a triangulation mirror-symmetric: triangles whose mirror image is not a triangle
    (MediaPipe's mesh has six such flipped quad diagonals) are replaced, on the +x side, by the
    mirror images of those on the -x side. Raises ValueError if that does not close up.
    """
    tris = np.asarray(triangles, np.int64)
    mirror = np.asarray(mirror, np.int64)
    keys = {tuple(sorted(t)) for t in tris.tolist()}
    bad = np.array([tuple(sorted(mirror[t])) not in keys for t in tris.tolist()], bool)
    if not bad.any():
        return tris
    x = np.asarray(vertices, np.float64)[tris, 0].mean(1)
    keep = tris[bad & (x < 0)]
    out = np.concatenate([tris[~bad], keep, mirror[keep]])
    out_keys = {tuple(sorted(t)) for t in out.tolist()}
    if len(out) != len(tris) or len(out_keys) != len(out) or not is_manifold(out):
        raise ValueError("cannot make the triangulation symmetric")
    return out


# Corner vertices of the holes: eye corners (outer, inner) and the mouth corners (inner lips).
_HOLE_CORNERS = {"right_eye": (33, 133), "left_eye": (263, 362), "mouth": (78, 308)}


def face_mesh(
    reference_vertices: np.ndarray | None = None,
    mirror: np.ndarray | None = None,
    fill_holes: bool = True,
) -> dict:
    """The oriented MediaPipe face-mesh triangles and what the model builder needs.

    Args:
      reference_vertices: [468, 3] any face in a y-up frame looking down +z (a MediaPipe
        result converted with y up and z toward the camera); decides the global orientation.
        Without it the orientation is only consistent, not necessarily front-facing.
      mirror: [468] mirror permutation (`mirror_permutation`; needs `reference_vertices`):
        makes the triangulation, hole fills included, exactly left/right symmetric.
      fill_holes: also triangulate the eye and mouth openings.

    Returns:
      dict with "triangles" [F, 3] int64, "fill" {hole name: [k, 3] its fill triangles} (also
      part of "triangles", listed last) and "open_triangles" (the first 852, without fills).
    """
    faces = faces_from_edges(tesselation_edges())
    if mirror is not None:
        if reference_vertices is None:
            raise ValueError("a mirror permutation needs reference vertices")
        faces = symmetrize(faces, mirror, reference_vertices)
    loops = boundary_loops(faces)
    fills = {}
    if fill_holes:
        for name, (a, b) in _HOLE_CORNERS.items():
            loop = next((lp for lp in loops if a in lp and b in lp), None)
            if loop is None:
                raise ValueError(f"no boundary loop holds the {name} corners {a}, {b}")
            if mirror is None or name == "right_eye":
                fills[name] = fill_loop(loop, a, b)
            elif name == "left_eye":
                fills[name] = mirror[fills["right_eye"]]
            else:  # the mouth maps onto itself: fill up to the midline, then mirror
                up, down = split_loop(loop, a, b)
                iu = next(k for k, v in enumerate(up) if mirror[v] == v)
                idn = next(k for k, v in enumerate(down) if mirror[v] == v)
                half = strip(up[: iu + 1], down[: idn + 1])
                fills[name] = np.concatenate([half, mirror[half]])
    tris = np.concatenate([faces, *fills.values()]) if fills else faces
    tris = orient_consistently(tris)
    if reference_vertices is not None:
        tris = orient_front(tris, reference_vertices)
    key = {tuple(sorted(t)): k for k, t in enumerate(tris.tolist())}
    fill_oriented = {k: tris[[key[tuple(sorted(t))] for t in v.tolist()]] for k, v in fills.items()}
    return {"triangles": tris, "fill": fill_oriented, "open_triangles": tris[: len(faces)]}


def flood_triangles(triangles: np.ndarray, seeds, barrier_vertices) -> np.ndarray:
    """[F] bool: the triangles reachable from `seeds` (triangle indices) across shared edges,
    never crossing an edge whose two vertices are both in `barrier_vertices`."""
    tris = np.asarray(triangles, np.int64)
    barrier = set(np.asarray(barrier_vertices).tolist())
    by_edge = collections.defaultdict(list)
    for f, t in enumerate(tris.tolist()):
        for a, b in itertools.combinations(t, 2):
            by_edge[(min(a, b), max(a, b))].append(f)
    inside = np.zeros(len(tris), bool)
    stack = list(np.asarray(seeds).tolist())
    inside[stack] = True
    while stack:
        t = tris[stack.pop()].tolist()
        for a, b in itertools.combinations(t, 2):
            if a in barrier and b in barrier:
                continue
            for g in by_edge[(min(a, b), max(a, b))]:
                if not inside[g]:
                    inside[g] = True
                    stack.append(g)
    return inside


def mirror_permutation(vertices: np.ndarray, tol: float = 0.08) -> np.ndarray:
    """perm[v] = the vertex mirrored to v under x -> -x, for a roughly symmetric face.

    `vertices` [V, 3] must be centred with the symmetry plane near x = 0. Matching is a
    nearest-neighbour assignment (Hungarian); it must be an involution and every match within
    `tol` times the face's x extent, else ValueError.
    """
    import scipy.optimize

    v = np.asarray(vertices, np.float64)
    flipped = v * np.array([-1.0, 1.0, 1.0])
    cost = ((v[:, None, :] - flipped[None, :, :]) ** 2).sum(-1)
    rows, cols = scipy.optimize.linear_sum_assignment(cost)
    perm = np.empty(len(v), np.int64)
    perm[rows] = cols
    extent = np.ptp(v[:, 0])
    if np.any(perm[perm] != np.arange(len(v))):
        raise ValueError("mirror matching is not an involution")
    if np.sqrt(cost[rows, cols].max()) > tol * extent:
        raise ValueError("face is not symmetric enough to match mirrored vertices")
    return perm


def subdivide(triangles: np.ndarray, num_vertices: int):
    """Midpoint subdivision: every triangle into four.

    Returns:
      (S, new_triangles, edges): S a scipy CSR matrix [V + E, V] with new = S @ old (the first
      V rows the identity, row V + k the midpoint of edges[k]); new_triangles [4F, 3] keep the
      orientation of their parent (child 4f + i for i < 3 at corner i, 4f + 3 the middle one);
      edges [E, 2] sorted, the edge of each new vertex.
    """
    tris = np.asarray(triangles, np.int64)
    edges = np.asarray(sorted(edge_face_counts(tris)), np.int64).reshape(-1, 2)
    index = {(a, b): num_vertices + k for k, (a, b) in enumerate(edges.tolist())}

    def mid(a, b):
        return index[(min(a, b), max(a, b))]

    new = []
    for a, b, c in tris.tolist():
        ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
        new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
    ne = len(edges)
    rows = np.concatenate([np.arange(num_vertices), np.repeat(num_vertices + np.arange(ne), 2)])
    cols = np.concatenate([np.arange(num_vertices), edges.reshape(-1)])
    vals = np.concatenate([np.ones(num_vertices), np.full(2 * ne, 0.5)])
    s = scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(num_vertices + ne, num_vertices))
    return s, np.asarray(new, np.int64).reshape(-1, 3), edges


def subdivide_times(triangles: np.ndarray, num_vertices: int, levels: int):
    """`subdivide` applied `levels` times: (S [V_L, V] CSR, triangles, parent_face [F_L])."""
    s = scipy.sparse.identity(num_vertices, format="csr")
    tris = np.asarray(triangles, np.int64)
    parent = np.arange(len(tris))
    for _ in range(levels):
        step, tris, _ = subdivide(tris, s.shape[0])
        s = (step @ s).tocsr()
        parent = np.repeat(parent, 4)
    return s, tris, parent


def mirror_subdivided(perm: np.ndarray, triangles: np.ndarray, levels: int) -> np.ndarray:
    """Extends a vertex mirror permutation through `levels` midpoint subdivisions."""
    perm = np.asarray(perm, np.int64)
    tris = np.asarray(triangles, np.int64)
    for _ in range(levels):
        s, tris_next, edges = subdivide(tris, len(perm))
        index = {(a, b): k for k, (a, b) in enumerate(edges.tolist())}
        mapped = perm[edges]
        lo, hi = mapped.min(1), mapped.max(1)
        try:
            ext = np.asarray([index[(a, b)] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)])
        except KeyError:
            raise ValueError("mirror permutation does not map edges to edges") from None
        perm = np.concatenate([perm, len(perm) + ext])
        tris = tris_next
    return perm
