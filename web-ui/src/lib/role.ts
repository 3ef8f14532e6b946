// The role of the token in use, and what it allows: the UI offers only what the server
// would accept (`viewer` reads, `operator` also runs jobs, `admin` also manages plugins).
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';

export type Role = 'viewer' | 'operator' | 'admin';

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/** Whether `role` may do what needs `needed`. */
export function allows(role: Role, needed: Role): boolean {
  return RANK[role] >= RANK[needed];
}

/** The role of the token in use (`admin` on a server without tokens). */
export const RoleContext = createContext<Role>('viewer');

/** Whether the current token may do what needs `needed`. */
export function useAllowed(needed: Role): boolean {
  return allows(useContext(RoleContext), needed);
}
