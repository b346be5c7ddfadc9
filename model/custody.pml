/*
 * custody.pml: a symbolic (Dolev-Yao) model of custos' appliance protocols, checked by Spin
 * (model/run.sh, `make verify`). docs/verification.md maps every step to its message, field and
 * checking function, and states the bounds and what a bounded check does not prove.
 *
 *   SIGMA-I between a keeper (initiator) and the trusted core E (responder), with the evidence
 *   whose report_data binds E's g^y, its signing key pk_E, the keeper's nonce and the custody
 *   fingerprint                                      docs/protocol.md "SIGMA-I handshake"
 *   the partial release over the record layer        "SIGMA-I records", "Quorum unseal"
 *   the unseal rule: t_p provider AND t_c customer partials, each proof checked   "Quorum unseal"
 *   the enclave-to-enclave join: the joiner's measurement equals E's, or a measurement approval
 *   signed by both domains names it                  "Enclave join", "Measurement approval"
 *
 * Abstraction. Terms are symbolic: a DH share, a nonce, a key or a piece of evidence is a small
 * number and every check is an equality of such numbers, so no primitive can be broken. The
 * intruder is the network and the host: every message passes through it. It keeps no state of
 * its own here: what it knows is read off what the honest parties have sent:
 *   - every message 1 and 2 and every record as sent: it may forward, replay, reorder or drop any
 *     of them, towards any party, any number of times;
 *   - what is sealed inside a message or record only if it holds the session key, i.e. if it is
 *     one end of the session itself (its DH share GI as initiator, GYI as responder);
 *   - its own signing key KI; the identity keys and shares of the compromised keepers (COMP);
 *     evidence from its own enclave of another build (measurement BAD) over any report_data;
 *     the published measurement approval; every public value (custody, keys, shares, nonces).
 * Each atomic step below is one delivery the intruder chooses; the receiver runs its checks and
 * either goes on (and what it sends is then the intruder's to use) or refuses. A refusal only
 * ends the receiver's session, which never helps the intruder, so a delivery that fails a check
 * is simply not taken: the receiver keeps waiting (a superset of the real behaviours).
 *
 * Flags (spin -D...):
 *   CFG=1..5      the configuration below (keepers, thresholds, compromised keepers, sessions)
 *   ONLY=<prop>   check this property only (default: every property)
 *   MUT_...=1     a mutant: one check of the real protocol removed (list after the configs)
 *   PROBE_UNSEAL=1, PROBE_JOIN=1, PROBE_JOIN_ATTEMPT=1   reachability probes: each must fail (E can
 *                 unseal; N can join; the intruder gets to try a join once E is unsealed)
 *
 * Properties (CHECK below; a violation prints "PROPERTY-VIOLATED: <name>" in the trail):
 *   partial_secrecy   no honest keeper's partial D_i = x_i*R is ever readable by the intruder
 *   root_secrecy      the intruder never holds the root key: neither t_p provider AND t_c customer
 *                     partials (its compromised keepers' included) nor a JoinGrant it can read
 *   agreement         a keeper releases only into the very session of E whose evidence it checked,
 *                     in which E authenticated that keeper, and only once per such session
 *   record_order      a record opened in a session between honest parties is the next one the
 *                     peer sealed, in that session and direction
 *   unseal_rule       E unseals only after t_p provider AND t_c customer keepers released to it
 *   join_measurement  E grants the root key only to a joiner of its own measurement, or of one
 *                     that a quorum of BOTH domains approved
 */

mtype = { partial_secrecy, root_secrecy, agreement, record_order, unseal_rule, join_measurement, probe };

/* ---- configurations ------------------------------------------------------------------------ */
/* Keepers P1, P2 (provider), C1, C2 (customer); COMP is the bitmask of compromised keeper ids.   */
/* Initiator sessions: NKS of honest keepers (KSESS each, consecutive), then the honest joining   */
/* core N if WITH_JOINER. E serves one session per honest message 1, NIS sessions the intruder     */
/* opens with its own message 1, and SPARE (0 or 1) more for any message 1.                        */
#ifndef CFG
#define CFG 2
#endif

#if CFG == 1
/* A: all four keepers honest, t_p = t_c = 2, one session each. */
#define T_P 2
#define T_C 2
#define COMP 0
#define KSESS 1
#define NKS 4
#define WITH_JOINER 0
#define START_UNSEALED 0
#define NIS 1
#define SPARE 1
#define OWNERS owner[0] = P1; owner[1] = P2; owner[2] = C1; owner[3] = C2
#elif CFG == 2
/* B: P2 and C2 compromised (one per domain), t_p = t_c = 2; P1 and C1 run two sessions each. */
#define T_P 2
#define T_C 2
#define COMP ((1 << P2) | (1 << C2))
#define KSESS 2
#define NKS 4
#define WITH_JOINER 0
#define START_UNSEALED 0
#define NIS 2
#define SPARE 1
#define OWNERS owner[0] = P1; owner[1] = P1; owner[2] = C1; owner[3] = C1
#elif CFG == 3
/* C: as B with t_p = 1: the compromised P2 alone holds the provider secret x_P. */
#define T_P 1
#define T_C 2
#define COMP ((1 << P2) | (1 << C2))
#define KSESS 2
#define NKS 4
#define WITH_JOINER 0
#define START_UNSEALED 0
#define NIS 2
#define SPARE 1
#define OWNERS owner[0] = P1; owner[1] = P1; owner[2] = C1; owner[3] = C1
#elif CFG == 4
/* JOIN-B: E is unsealed; the honest core N (same build) joins; P2, C2 compromised, t = 2/2. */
#define T_P 2
#define T_C 2
#define COMP ((1 << P2) | (1 << C2))
#define KSESS 1
#define NKS 0
#define WITH_JOINER 1
#define START_UNSEALED 1
#define NIS 2
#define SPARE 1
#define OWNERS owner[0] = JOINER
#elif CFG == 5
/* JOIN-C: as JOIN-B with t_p = 1: P2's signature alone is a provider quorum for an approval. */
#define T_P 1
#define T_C 2
#define COMP ((1 << P2) | (1 << C2))
#define KSESS 1
#define NKS 0
#define WITH_JOINER 1
#define START_UNSEALED 1
#define NIS 2
#define SPARE 1
#define OWNERS owner[0] = JOINER
#endif

/* ---- mutants: each removes one check of the real protocol --------------------------------- */
#ifndef MUT_NO_BINDING          /* sigma::CheckReportData not called (keeper's and cores' verifiers) */
#define MUT_NO_BINDING 0
#endif
#ifndef MUT_BIND_NO_GY          /* report_data without g^y */
#define MUT_BIND_NO_GY 0
#endif
#ifndef MUT_BIND_NO_PK          /* report_data without pk_E */
#define MUT_BIND_NO_PK 0
#endif
#ifndef MUT_BIND_NO_NONCE       /* report_data without the keeper's nonce */
#define MUT_BIND_NO_NONCE 0
#endif
#ifndef MUT_NO_MAC              /* messages 2 and 3 prove no session key (no mac_E/mac_K; see docs) */
#define MUT_NO_MAC 0
#endif
#ifndef MUT_NO_SEQ              /* SecureChannel::Open accepts any record of the session */
#define MUT_NO_SEQ 0
#endif
#ifndef MUT_ONE_DOMAIN_UNSEAL   /* TryUnseal counts the provider threshold only */
#define MUT_ONE_DOMAIN_UNSEAL 0
#endif
#ifndef MUT_ONE_DOMAIN_APPROVAL /* CheckApproval counts the provider quorum only */
#define MUT_ONE_DOMAIN_APPROVAL 0
#endif
#ifndef MUT_NO_MEASUREMENT      /* CheckPeerEvidence compares no measurement (own or approved) */
#define MUT_NO_MEASUREMENT 0
#endif
#ifndef MUT_NO_FRESH            /* a keeper draws g^x and its nonce once and reuses them */
#define MUT_NO_FRESH 0
#endif
#ifndef PROBE_UNSEAL
#define PROBE_UNSEAL 0
#endif
#ifndef PROBE_JOIN
#define PROBE_JOIN 0
#endif
#ifndef PROBE_JOIN_ATTEMPT      /* the intruder reaches E's join path (a release configuration: after an unseal) */
#define PROBE_JOIN_ATTEMPT 0
#endif
#ifndef ONLY
#define ONLY 0
#endif

#define CHECK(p, c) \
  if \
  :: ((ONLY == 0 || ONLY == p) && !(c)) -> printf("PROPERTY-VIOLATED: %e\n", p); assert(false) \
  :: else -> skip \
  fi

/* ---- symbols ------------------------------------------------------------------------------- */
#define P1 1
#define P2 2
#define C1 3
#define C2 4
#define JOINID 5                         /* keeper_id "@enclave" (sigma::kJoinPeerId) */
#define JOINER 6                         /* owner of the joining core's session */
#define IS_P(k) ((k) == P1 || (k) == P2)
#define COMPROMISED(k) (((COMP) >> (k)) & 1)
#define NP(m) ((((m) >> P1) & 1) + (((m) >> P2) & 1))
#define NC(m) ((((m) >> C1) & 1) + (((m) >> C2) & 1))
/* a keeper's name for the narration: printf("%c%d", KL(k), KX(k)) */
#define KL(k) ((k) == JOINID -> '@' : (IS_P(k) -> 'P' : 'C'))
#define KX(k) ((k) == JOINID -> 0 : ((k) - 1) % 2 + 1)

#define NI (NKS + WITH_JOINER)           /* honest initiator sessions */
#define NE (NI + NIS + SPARE)            /* E's sessions */
#define GI NI                            /* the intruder's g^x */
#define NONCE_I NI                       /* the intruder's nonce */
#define GYI NE                           /* the intruder's g^y */
#define BADEV NE                         /* evidence from the intruder's enclave (measurement BAD) */
/* an honest session's g^x and nonce: fresh per session, or (mutant) one per keeper */
#if MUT_NO_FRESH
#define SHARE(i) ((i) - ((i) % KSESS))
#else
#define SHARE(i) (i)
#endif
#define NONCE(i) SHARE(i)

/* enclave signing keys */
#define KE 1                             /* the honest core E (pk_E) */
#define KN 2                             /* the honest joining core N */
#define KI 3                             /* the intruder's enclave */

/* measurements */
#define GOOD 1                           /* E's and N's build */
#define BAD 2                            /* the intruder's enclave: a build nobody approved */
#define NEW 3                            /* the build both domains approved (published approval) */

/* the approval the intruder attaches to a JoinRequest */
#define A_NONE 0
#define A_NEW 1                          /* the published approval of NEW (all four keepers signed) */
#define A_FORGED 2                       /* an approval of BAD signed by the compromised keepers */

/* initiator session states */
#define M1SENT 1                         /* message 1 sent: it is public */
#define ACCEPTED 2                       /* message 2 accepted, message 3 sent (N: and JoinRequest) */
#define RELEASED 3                       /* keeper: PartialRelease sent */
#define DONE 4                           /* keeper: UnsealProgress read; N: grant adopted */

/* E's session states */
#define FREE 0
#define RESPONDED 1                      /* message 2 sent */
#define FINISHED 2                       /* message 3 accepted, first record sent (if any) */
#define CLOSED 3                         /* its record handled, or dropped */

/* record contents */
#define R_NONE 0
#define R_REQ 1                          /* UnsealRequest (custody fp, R, envelope digest) */
#define R_PROG 2                         /* UnsealProgress */
#define R_GRANT 3                        /* JoinGrant (root key, envelope, origin evidence) */

/* ---- state --------------------------------------------------------------------------------- */
/* initiator session i: a keeper's release (ReleaseToAppliance) or N's join (JoinStart..) */
byte owner[NI];
byte kst[NI];
byte kgy[NI];                            /* g^y accepted: that of E's session t, or GYI */
byte kev[NI];                            /* evidence accepted: that of E's session t, or BADEV */
byte kpk[NI];                            /* responder signing key accepted */
/* E's responder sessions (EnclaveCore::Session) */
byte es[NE];
byte egx[NE];                            /* g^x of its message 1 */
byte en[NE];                             /* nonce of its message 1 */
byte epeer[NE];                          /* keeper id, or JOINID, authenticated by message 3 */
byte epk[NE];                            /* a joiner's key (from message 3) */
byte erec0[NE];                          /* e2k record 0 sealed */
byte erec1[NE];                          /* e2k record 1 sealed */
bool sealed = true;
byte contrib;                            /* keepers whose verified partial E keeps */
/* ghosts: the ground truth the properties are stated over; no check reads them */
byte released;                           /* keepers that released a partial into a session with E */
byte leaked;                             /* honest keepers whose partial the intruder can read */
bool grant_leak;                         /* E sealed a JoinGrant under a key the intruder holds */
bool matched[NE];                        /* E's session already took a keeper's release */

/* ---- what the intruder knows (derived) ------------------------------------------------------- */
#define ROOT_KNOWN ((NP(COMP | leaked) >= T_P && NC(COMP | leaked) >= T_C) || grant_leak)
/* N's join evidence: readable if N sealed its JoinRequest under a key the intruder holds */
#define N_EVIDENCE_KNOWN (WITH_JOINER && kst[NKS] >= ACCEPTED && kgy[NKS] == GYI)
/* approvals: a signature counts for its keeper's domain; honest keepers signed NEW only */
#define FORGED_QUORUM (NP(COMP) >= T_P && (MUT_ONE_DOMAIN_APPROVAL || NC(COMP) >= T_C))
#define LEGIT_BAD_QUORUM (NP(COMP) >= T_P && NC(COMP) >= T_C)

#define INVARIANTS \
  CHECK(partial_secrecy, leaked == 0); \
  CHECK(root_secrecy, !ROOT_KNOWN)

/* ---- the parties' checks ------------------------------------------------------------------- */

/* Initiator i's policy on evidence v (a keeper: CheckEnclaveEvidence -> CheckPolicy, pinned to
 * GOOD; N: CheckPeerEvidence, measurement equal to its own, GOOD). */
#define POLICY_OK(i, v) ((v) != BADEV || (owner[i] == JOINER && MUT_NO_MEASUREMENT))

/* sigma::CheckReportData: the report_data initiator i computes from message 2 (g^y g, signing
 * key pk, its own nonce, its custody) must be the evidence's. E's evidence of session v binds
 * (g^y_v, KE, en[v], F); the intruder's BAD evidence binds whatever it likes. There is one
 * custody, so the custody field always agrees. */
#define BIND_OK(i, v, g, pk) \
  (MUT_NO_BINDING || (v) == BADEV || \
   (((g) == (v) || MUT_BIND_NO_GY) && ((pk) == KE || MUT_BIND_NO_PK) && (en[v] == NONCE(i) || MUT_BIND_NO_NONCE)))

/* Initiator i accepts message 2 (SigmaInitiator::Finish) and sends message 3 (N: and its
 * JoinRequest, record k2e 0). */
inline accept_m2(i, g, v, pk) {
  kst[i] = ACCEPTED; kgy[i] = g; kev[i] = v; kpk[i] = pk;
  if
  :: owner[i] == JOINER -> printf("MSC: N (initiator session %d) accepts a message 2 and sends message 3 and its JoinRequest:\n", i)
  :: else -> printf("MSC: %c%d (initiator session %d) accepts a message 2 and sends message 3:\n", KL(owner[i]), KX(owner[i]), i)
  fi;
  if
  :: g == GYI -> printf("MSC:     g^y is the intruder's (it holds the session key)\n")
  :: else -> printf("MSC:     g^y is that of E session %d\n", g)
  fi;
  if
  :: v == BADEV -> printf("MSC:     evidence from the intruder's enclave (measurement BAD)\n")
  :: else -> printf("MSC:     evidence E made in E session %d\n", v)
  fi;
  if
  :: pk == KE -> printf("MSC:     signed by pk_E\n")
  :: else -> printf("MSC:     signed by the intruder's key\n")
  fi
}

/* E authenticated peer p with key k in session s (SigmaResponder::Finish, AuthorizePeer) and
 * answers as EnclaveCore::SigmaFinish does. */
inline finish(s, p, k) {
  epeer[s] = p; epk[s] = k;
  /* one authenticated session per peer: the newer replaces the older */
  for (t : 0 .. NE - 1) {
    if
    :: t != s && es[t] == FINISHED && epeer[t] == p -> es[t] = CLOSED
    :: else -> skip
    fi
  }
  t = 0;
  if
  :: p == JOINID -> es[s] = FINISHED                     /* no record: the joiner speaks first */
  :: p != JOINID && sealed && !((contrib >> p) & 1) -> erec0[s] = R_REQ; es[s] = FINISHED
  :: else -> erec0[s] = R_PROG; es[s] = CLOSED            /* nothing to ask this keeper */
  fi;
  if
  :: p == JOINID && k == KN -> printf("MSC: E session %d accepts message 3 from the joiner N (\"@enclave\")\n", s)
  :: p == JOINID && k != KN -> printf("MSC: E session %d accepts message 3 from the intruder as a joiner (\"@enclave\")\n", s)
  :: p != JOINID && erec0[s] == R_REQ -> printf("MSC: E session %d accepts message 3 as keeper %c%d and sends it an UnsealRequest (record 0)\n", s, KL(p), KX(p))
  :: else -> printf("MSC: E session %d accepts message 3 as keeper %c%d and sends it an UnsealProgress (record 0)\n", s, KL(p), KX(p))
  fi
}

/* E's TryUnseal after a verified partial. */
inline try_unseal() {
  if
  :: sealed && NP(contrib) >= T_P && (MUT_ONE_DOMAIN_UNSEAL || NC(contrib) >= T_C) ->
       printf("MSC: E unseals with %d provider and %d customer partials (keepers that released: %d provider, %d customer)\n",
              NP(contrib), NC(contrib), NP(released), NC(released));
       sealed = false; contrib = 0;
       CHECK(unseal_rule, NP(released) >= T_P && NC(released) >= T_C);
       CHECK(probe, !PROBE_UNSEAL)
  :: else -> skip
  fi
}

/* E's OnPartial in session s, on a PartialRelease holding keeper q's partial: the index and the
 * DLEQ proof against the peer's verification key hold iff q is the authenticated peer. */
inline on_partial(s, q) {
  if
  :: !sealed -> erec1[s] = R_PROG; es[s] = CLOSED       /* unsealed meanwhile: not looked at */
  :: sealed && q == epeer[s] ->
       printf("MSC: E session %d verifies and keeps the partial of %c%d\n", s, KL(q), KX(q));
       contrib = contrib | (1 << q);
       try_unseal();
       erec1[s] = R_PROG; es[s] = CLOSED
  :: else -> skip                                       /* refused: index or proof */
  fi
}

/* E's OnJoinRequest in session s: evidence of measurement m whose report_data is bound to the
 * session iff b, approval a (CheckPeerEvidence, VerifyApproval, CheckApproval). */
inline on_join(s, m, b, a) {
  if
  :: !sealed && (MUT_NO_BINDING || b) &&
     (MUT_NO_MEASUREMENT ||
      (a == A_NONE && m == GOOD) ||
      (a == A_NEW && m == NEW) ||
      (a == A_FORGED && FORGED_QUORUM && m == BAD)) ->
       printf("MSC: E session %d grants the root key to a joiner with measurement %d (1 GOOD, 2 BAD), approval %d (0 none, 1 NEW, 2 forged)\n",
              s, m, a);
       CHECK(join_measurement, m != BAD || LEGIT_BAD_QUORUM);
       erec0[s] = R_GRANT; es[s] = CLOSED;
       if
       :: egx[s] == GI -> grant_leak = true
       :: else -> skip
       fi;
       INVARIANTS
  :: else -> skip
  fi
}

/* Keeper session i reads record content c at the position it expects (ReleaseToAppliance). */
inline keeper_reads(i, c) {
  if
  :: kst[i] == ACCEPTED && c == R_REQ ->
       /* UnsealRequest names this custody: audit enclave.release, send D_i = x_i*R + proof */
       kst[i] = RELEASED;
       if
       :: kgy[i] == GYI -> leaked = leaked | (1 << owner[i])
       :: else -> released = released | (1 << owner[i])
       fi;
       if
       :: kgy[i] == GYI -> printf("MSC: %c%d (initiator session %d) reads an UnsealRequest and releases its partial D_%c%d under a key the intruder holds\n",
                                 KL(owner[i]), KX(owner[i]), i, KL(owner[i]), KX(owner[i]))
       :: else -> printf("MSC: %c%d (initiator session %d) reads an UnsealRequest and releases its partial D_%c%d into E session %d\n",
                         KL(owner[i]), KX(owner[i]), i, KL(owner[i]), KX(owner[i]), kgy[i])
       fi;
       INVARIANTS;
       CHECK(agreement, kgy[i] < NE && kev[i] == kgy[i] && kpk[i] == KE &&
                        egx[kgy[i]] == SHARE(i) && en[kgy[i]] == NONCE(i) &&
                        epeer[kgy[i]] == owner[i] && !matched[kgy[i]]);
       if
       :: kgy[i] < NE -> matched[kgy[i]] = true
       :: else -> skip
       fi
  :: kst[i] == ACCEPTED && c == R_PROG -> kst[i] = DONE   /* E needs nothing from this keeper */
  :: kst[i] == RELEASED && c == R_PROG -> kst[i] = DONE
  :: else -> skip                                         /* another record type: refused */
  fi
}

/* ---- the intruder's deliveries ---------------------------------------------------------------- */

/* (1) a message 1 reaches E's session s, which answers with message 2 (EnclaveCore::SigmaRespond:
 *     evidence over report_data(g^y_s, pk_E, nonce, custody), sig_E, mac_E). Session s < NI takes
 *     honest session s's message 1; sessions NI .. NI+NIS-1 the intruder's own (GI, NONCE_I), in
 *     order; the spare session any message 1: an honest one again (a replay) or the intruder's
 *     g^x with any nonce it knows. */
#define OPENABLE(S) (es[S] == FREE && \
  ((S) < NI || ((S) < NI + NIS && ((S) == NI || es[((S) > 0 -> (S) - 1 : 0)] != FREE)) || (SPARE && (S) == NE - 1)))
inline open_session(s) {
  if
  :: s < NI -> egx[s] = SHARE(s); en[s] = NONCE(s)
  :: s >= NI && s < NI + NIS -> egx[s] = GI; en[s] = NONCE_I
  :: s == NE - 1 && SPARE ->
       select (g : 0 .. NI);
       if
       :: g < NI -> egx[s] = SHARE(g); en[s] = NONCE(g)
       :: else -> select (v : 0 .. NI); egx[s] = GI; en[s] = (v < NI -> NONCE(v) : NONCE_I)
       fi
  fi;
  es[s] = RESPONDED;
  if
  :: egx[s] == GI && en[s] == NONCE_I ->
       printf("MSC: the intruder sends E session %d its own message 1; it can open E's message 2 (g^y, evidence over report_data(g^y, pk_E, its nonce, custody))\n", s)
  :: egx[s] == GI && en[s] != NONCE_I ->
       printf("MSC: the intruder sends E session %d its own g^x with the nonce of initiator session %d; it can open E's message 2 (evidence over report_data(g^y, pk_E, that nonce, custody))\n", s, en[s])
  :: else ->
       printf("MSC: E session %d receives the message 1 of initiator session %d and answers with message 2 (g^y, evidence over report_data(g^y, pk_E, that nonce, custody))\n", s, egx[s])
  fi
}

/* (2) message 2 to initiator i: E's session t's, forwarded; or made by the intruder with its own
 *     g^y (under MUT_NO_MAC any g^y), signed with KI, carrying its BAD evidence or the evidence
 *     of an E session it opened itself (and so could read). */
inline deliver_m2(i) {
  select (t : 0 .. NE);
  if
  :: t < NE && es[t] != FREE &&
     /* decrypts under this session's k_hs; sig_E and mac_E verify over this transcript */
     egx[t] == SHARE(i) && en[t] == NONCE(i) &&
     POLICY_OK(i, t) && BIND_OK(i, t, t, KE) ->
       accept_m2(i, t, t, KE)
  :: t == NE ->
       select (v : NI .. NE);                          /* only the intruder's sessions have g^x GI */
       if
       :: (v == BADEV || (es[v] != FREE && egx[v] == GI)) && POLICY_OK(i, v) ->
            if
            :: g = GYI
            :: MUT_NO_MAC -> select (g : 0 .. NE - 1)
            fi;
            if
            :: (g == GYI || es[g] != FREE) && BIND_OK(i, v, g, KI) ->
                 accept_m2(i, g, v, KI)
            :: else -> skip
            fi
       :: else -> skip
       fi
  :: else -> skip
  fi
}

/* (3) message 3 to E's session s: honest initiator i's, or the intruder's as a compromised keeper
 *     or as a joiner "@enclave" (key KI); under MUT_NO_MAC also into a session whose key it
 *     does not hold. */
inline deliver_m3(s) {
  select (i : 0 .. NI);
  if
  :: i < NI && kst[i] >= ACCEPTED &&
     /* sealed3 under this session's key; sig_K and mac_K over E's transcript, which holds only
      * if i read exactly E's message 2 of this session */
     egx[s] == SHARE(i) && en[s] == NONCE(i) && kgy[i] == s && kev[i] == s && kpk[i] == KE ->
       if
       :: owner[i] == JOINER && !sealed -> finish(s, JOINID, KN)
       :: owner[i] != JOINER -> finish(s, owner[i], 0)
       :: else -> skip                                   /* "@enclave" while sealed: refused */
       fi
  :: i == NI && (egx[s] == GI || MUT_NO_MAC) ->
       select (q : P1 .. JOINID);
       if
       :: q == JOINID && !sealed ->
            printf("MSC: the intruder sends E session %d a message 3 as a joiner, with its own key\n", s);
            CHECK(probe, !PROBE_JOIN_ATTEMPT);
            finish(s, JOINID, KI)
       :: q != JOINID && COMPROMISED(q) ->
            if
            :: egx[s] == GI -> printf("MSC: the intruder sends E session %d a message 3 signed with the compromised %c%d's key\n", s, KL(q), KX(q))
            :: else -> printf("MSC: the intruder sends E session %d, whose key it does not hold, a message 3 signed with the compromised %c%d's key\n", s, KL(q), KX(q))
            fi;
            finish(s, q, 0)
       :: else -> skip                                   /* cannot sign as an honest keeper */
       fi
  :: else -> skip
  fi
}

/* (4) an enclave-to-keeper record to initiator i. SecureChannel::Open: the session key (so a
 *     record E sealed in i's session t = kgy[i], or one the intruder seals if the key is its
 *     own), the e2k direction (records the initiators seal are k2e: another key) and, unless
 *     MUT_NO_SEQ, the next sequence number. */
inline deliver_e2k(i) {
  t = kgy[i];
  if
  :: t < NE && egx[t] == SHARE(i) ->
       select (a : 0 .. 1);
       if
       :: ((a == 0 && erec0[t] != R_NONE) || (a == 1 && erec1[t] != R_NONE)) &&
          (MUT_NO_SEQ || a == (kst[i] == RELEASED)) ->
            printf("MSC: initiator session %d opens the record E session %d sealed with sequence number %d as its record number %d\n",
                   i, t, a, (kst[i] == RELEASED));
            /* only E and i hold this key: the record must be the next one E sealed */
            CHECK(record_order, a == (kst[i] == RELEASED));
            if
            :: owner[i] == JOINER ->
                 if
                 :: a == 0 && erec0[t] == R_GRANT ->
                      kst[i] = DONE;                     /* its origin evidence names the key */
                      printf("MSC: N adopts the root key granted by E session %d\n", t);
                      CHECK(probe, !PROBE_JOIN)
                 :: else -> skip
                 fi
            :: owner[i] != JOINER && a == 0 -> keeper_reads(i, erec0[t])
            :: owner[i] != JOINER && a == 1 -> keeper_reads(i, erec1[t])
            fi
       :: else -> skip
       fi
  :: t == GYI && owner[i] != JOINER ->
       /* the intruder plays the core: an UnsealRequest or a progress record. (A grant it makes
        * for N holds a root key that no genuine origin evidence names: refused.) */
       select (q : R_REQ .. R_PROG);
       printf("MSC: the intruder, playing the core, seals record %d (1 UnsealRequest, 2 UnsealProgress) for initiator session %d\n", q, i);
       keeper_reads(i, q)
  :: else -> skip
  fi
}

/* (5) a keeper-to-enclave record to E's session s (its only one, k2e 0): honest initiator i's
 *     (a PartialRelease, or N's JoinRequest), or one the intruder seals in its own session. */
inline deliver_k2e(s) {
  select (i : 0 .. NI);
  if
  :: i < NI && egx[s] == SHARE(i) && kgy[i] == s &&
     ((owner[i] != JOINER && kst[i] >= RELEASED) || (owner[i] == JOINER && kst[i] >= ACCEPTED)) ->
       if
       :: owner[i] != JOINER && epeer[s] != JOINID -> on_partial(s, owner[i])
       :: owner[i] == JOINER && epeer[s] == JOINID ->
            /* N's evidence over JoinReportData(pk_N, message 1, message 2 as N saw them) */
            printf("MSC: E session %d receives N's JoinRequest\n", s);
            on_join(s, GOOD, (epk[s] == KN && en[s] == NONCE(i) && kev[i] == s && kpk[i] == KE), A_NONE)
       :: else -> skip                                   /* another record type: refused */
       fi
  :: i == NI && egx[s] == GI && epeer[s] != JOINID ->
       /* as the compromised peer: its own partial (any other fails the proof) */
       if
       :: sealed -> released = released | (1 << epeer[s]);
            printf("MSC: the intruder, as the compromised %c%d, sends E session %d that keeper's partial\n", KL(epeer[s]), KX(epeer[s]), s)
       :: else -> skip
       fi;
       on_partial(s, epeer[s])
  :: i == NI && egx[s] == GI && epeer[s] == JOINID ->
       /* as a joiner: its BAD evidence bound to this session, or N's evidence if it could read
        * it; with no approval, the published one (of NEW), or one forged by its keepers */
       select (a : A_NONE .. A_FORGED);
       select (v : 0 .. 1);
       if
       :: v == 0 ->
            printf("MSC: the intruder sends E session %d a JoinRequest: its enclave's evidence (BAD) bound to this session, approval %d (0 none, 1 NEW, 2 forged)\n", s, a);
            on_join(s, BAD, true, a)
       :: v == 1 && N_EVIDENCE_KNOWN ->
            printf("MSC: the intruder sends E session %d a JoinRequest with N's evidence (made for N's session), approval %d\n", s, a);
            on_join(s, GOOD, false, a)
       :: else -> skip
       fi
  :: else -> skip
  fi
}

/* One option of the main loop per kind of delivery, enabled only while some receiver waits for
 * that message (the guard is unrolled over the receivers; the body, written once, picks one).
 * The locals are reset so they never tell two states apart. */
#define WAITS_M2(I) (kst[I] == M1SENT)
#define WAITS_E2K(I) (kst[I] == ACCEPTED || kst[I] == RELEASED)
#define WAITS_M3(S) (es[S] == RESPONDED)
#define WAITS_K2E(S) (es[S] == FINISHED)
#if NI == 1
#define ANY_INITIATOR(P) (P(0))
#elif NI == 4
#define ANY_INITIATOR(P) (P(0) || P(1) || P(2) || P(3))
#endif
#if NE == 4
#define ANY_E_SESSION(P) (P(0) || P(1) || P(2) || P(3))
#elif NE == 6
#define ANY_E_SESSION(P) (P(0) || P(1) || P(2) || P(3) || P(4) || P(5))
#elif NE == 7
#define ANY_E_SESSION(P) (P(0) || P(1) || P(2) || P(3) || P(4) || P(5) || P(6))
#endif
#define RESET i = 0; s = 0; t = 0; g = 0; v = 0; q = 0; a = 0

/* ---- the world ------------------------------------------------------------------------------ */
active proctype world() {
  byte i, s, t, g, v, q, a;

  d_step {
    OWNERS;
    sealed = !START_UNSEALED;
    /* every honest initiator has started: its message 1 is public (starting later would give
     * the intruder nothing more) */
    for (i : 0 .. NI - 1) {
      kst[i] = M1SENT;
      if
      :: owner[i] == JOINER -> printf("MSC: initiator session %d: the joining core N\n", i)
      :: else -> printf("MSC: initiator session %d: keeper %c%d\n", i, KL(owner[i]), KX(owner[i]))
      fi
    }
    i = 0;
    printf("MSC: config %d: t_p %d, t_c %d, P2 compromised %d, C2 compromised %d, E unsealed at start %d; E sessions 0..%d (%d..%d opened by the intruder, %d spare); %d as g^x or nonce and %d as g^y or evidence mean the intruder's\n",
           CFG, T_P, T_C, COMPROMISED(P2), COMPROMISED(C2), START_UNSEALED, NE - 1, NI, NI + NIS - 1,
           (SPARE -> NE - 1 : 255), GI, GYI)
  }

  /* a state in which nothing can be delivered is a valid end: all wait for what never comes */
end_quiet:
  do
  :: atomic { ANY_E_SESSION(OPENABLE) ->
       select (s : 0 .. NE - 1); if :: OPENABLE(s) -> open_session(s) :: else -> skip fi; RESET }
  :: atomic { ANY_INITIATOR(WAITS_M2) ->
       select (i : 0 .. NI - 1); if :: WAITS_M2(i) -> deliver_m2(i) :: else -> skip fi; RESET }
  :: atomic { ANY_E_SESSION(WAITS_M3) ->
       select (s : 0 .. NE - 1); if :: WAITS_M3(s) -> deliver_m3(s) :: else -> skip fi; RESET }
  :: atomic { ANY_INITIATOR(WAITS_E2K) ->
       select (i : 0 .. NI - 1); if :: WAITS_E2K(i) -> deliver_e2k(i) :: else -> skip fi; RESET }
  :: atomic { ANY_E_SESSION(WAITS_K2E) ->
       select (s : 0 .. NE - 1); if :: WAITS_K2E(s) -> deliver_k2e(s) :: else -> skip fi; RESET }
  od
}
