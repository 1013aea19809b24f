/*
 * faultshim: a PKCS#11 v2.40 fault-injection shim for tests.
 *
 * The shim exports only C_GetFunctionList. On first use it dlopen()s the real
 * module named by $FAULTSHIM_TARGET (RTLD_NOW|RTLD_LOCAL), copies its function
 * list and replaces some entries with wrappers that consult a small control
 * file ($FAULTSHIM_CONTROL) on every wrapped call. One directive per line
 * (blank lines and lines starting with '#' are ignored; CK_RV values may be
 * decimal or 0x-hex):
 *
 *   sign=CKR          C_Sign fails with CKR. The real C_Sign is still run to
 *                     completion (its result discarded) so that the real
 *                     module's signing operation is terminated.
 *   sign_delay_ms=N   C_Sign sleeps N ms before the real call (only on calls
 *                     that produce the signature, not on length queries).
 *   login=CKR         C_Login returns CKR without calling the real C_Login.
 *   removed=1         the token is "pulled out": C_GetSlotList(TRUE) shows no
 *                     slots, C_GetSlotInfo clears CKF_TOKEN_PRESENT,
 *                     C_GetTokenInfo / C_OpenSession / C_GetMechanism* return
 *                     CKR_TOKEN_NOT_PRESENT and session calls return
 *                     CKR_DEVICE_REMOVED. When the shim first *observes* the
 *                     removed state (on a wrapped call) it calls the real
 *                     C_CloseAllSessions on every slot, so old session
 *                     handles stay invalid after "re-insertion".
 *   calls_file=PATH   append "sign" / "login <user_type>" lines to PATH.
 *                     One "sign" line per signing attempt: length queries
 *                     (pSignature == NULL answered CKR_OK/BUFFER_TOO_SMALL)
 *                     are not logged.
 *
 * $FAULTSHIM_SOFTHSM2_CONF, if set, is put into SOFTHSM2_CONF around the real
 * C_Initialize (and the previous value restored), so the shim's SoftHSM2
 * instance can use its own token directory.
 *
 * $FAULTSHIM_OS_LOCKING=1 makes the shim pass {flags = CKF_OS_LOCKING_OK} to
 * the real C_Initialize when the caller passes NULL (python-pkcs11 does): with
 * NULL, SoftHSM2 disables all its internal locking and concurrent sessions in
 * several threads corrupt its state. Off by default (faithful to plain use).
 *
 * All FAULTSHIM_* variables are read once, on the first C_GetFunctionList
 * (module load), so the environment may be restored right after loading.
 * Note: setenv() around C_Initialize is not safe against other threads
 * calling getenv() at that very moment; tests load modules from one thread.
 *
 * No OASIS headers needed: the few types used are declared here.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef unsigned long CK_ULONG;
typedef CK_ULONG CK_RV;
typedef CK_ULONG CK_SLOT_ID;
typedef CK_ULONG CK_SESSION_HANDLE;
typedef CK_ULONG CK_OBJECT_HANDLE;
typedef CK_ULONG CK_FLAGS;
typedef CK_ULONG CK_USER_TYPE;
typedef unsigned char CK_BYTE;
typedef unsigned char CK_BBOOL;

typedef struct CK_VERSION {
    unsigned char major;
    unsigned char minor;
} CK_VERSION;

/* PKCS#11 v2.40: 68 function pointers after the version. */
#define FL_SIZE 68
typedef struct CK_FUNCTION_LIST {
    CK_VERSION version;
    void *fn[FL_SIZE];
} CK_FUNCTION_LIST;

/* CK_SLOT_INFO, only to clear CKF_TOKEN_PRESENT. */
/* CK_C_INITIALIZE_ARGS, only to ask for OS locking. */
typedef struct CK_C_INITIALIZE_ARGS {
    void *CreateMutex;
    void *DestroyMutex;
    void *LockMutex;
    void *UnlockMutex;
    CK_FLAGS flags;
    void *pReserved;
} CK_C_INITIALIZE_ARGS;
#define CKF_OS_LOCKING_OK 0x02UL

typedef struct CK_SLOT_INFO {
    unsigned char slotDescription[64];
    unsigned char manufacturerID[32];
    CK_FLAGS flags;
    CK_VERSION hardwareVersion;
    CK_VERSION firmwareVersion;
} CK_SLOT_INFO;

#define CKR_OK 0x00UL
#define CKR_GENERAL_ERROR 0x05UL
#define CKR_ARGUMENTS_BAD 0x07UL
#define CKR_DEVICE_REMOVED 0x32UL
#define CKR_BUFFER_TOO_SMALL 0x150UL
#define CKR_TOKEN_NOT_PRESENT 0xE0UL
#define CKF_TOKEN_PRESENT 0x01UL

/* Function-list indices (PKCS#11 v2.40, pkcs11f.h order). */
enum {
    IX_Initialize = 0,
    IX_Finalize = 1,
    IX_GetInfo = 2,
    IX_GetFunctionList = 3,
    IX_GetSlotList = 4,
    IX_GetSlotInfo = 5,
    IX_GetTokenInfo = 6,
    IX_GetMechanismList = 7,
    IX_GetMechanismInfo = 8,
    IX_InitToken = 9,
    IX_InitPIN = 10,
    IX_SetPIN = 11,
    IX_OpenSession = 12,
    IX_CloseSession = 13,
    IX_CloseAllSessions = 14,
    IX_GetSessionInfo = 15,
    IX_GetOperationState = 16,
    IX_SetOperationState = 17,
    IX_Login = 18,
    IX_Logout = 19,
    IX_CreateObject = 20,
    IX_CopyObject = 21,
    IX_DestroyObject = 22,
    IX_GetObjectSize = 23,
    IX_GetAttributeValue = 24,
    IX_SetAttributeValue = 25,
    IX_FindObjectsInit = 26,
    IX_FindObjects = 27,
    IX_FindObjectsFinal = 28,
    IX_EncryptInit = 29,
    IX_Encrypt = 30,
    IX_DecryptInit = 33,
    IX_Decrypt = 34,
    IX_DigestInit = 37,
    IX_Digest = 38,
    IX_SignInit = 42,
    IX_Sign = 43,
    IX_SignUpdate = 44,
    IX_SignFinal = 45,
    IX_VerifyInit = 48,
    IX_Verify = 49,
    IX_GenerateKey = 58,
    IX_GenerateKeyPair = 59,
    IX_GenerateRandom = 64,
    IX_WaitForSlotEvent = 67
};

typedef CK_RV (*fn_Initialize)(void *);
typedef CK_RV (*fn_GetSlotList)(CK_BBOOL, CK_SLOT_ID *, CK_ULONG *);
typedef CK_RV (*fn_GetSlotInfo)(CK_SLOT_ID, CK_SLOT_INFO *);
typedef CK_RV (*fn_CloseAllSessions)(CK_SLOT_ID);
typedef CK_RV (*fn_Login)(CK_SESSION_HANDLE, CK_USER_TYPE, CK_BYTE *, CK_ULONG);
typedef CK_RV (*fn_Sign)(CK_SESSION_HANDLE, CK_BYTE *, CK_ULONG, CK_BYTE *, CK_ULONG *);

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static CK_FUNCTION_LIST *g_real;    /* the real module's list */
static CK_FUNCTION_LIST g_list;     /* ours: copy of the real one + wrappers */
static int g_loaded;
static int g_seen_removed;          /* removal already acted upon */
static char g_control[4096];        /* $FAULTSHIM_CONTROL, captured at load */
static char g_conf[4096];           /* $FAULTSHIM_SOFTHSM2_CONF, captured at load */
static int g_os_locking;            /* $FAULTSHIM_OS_LOCKING=1, captured at load */

#define REAL(ix, type) ((type)g_real->fn[(ix)])

/* ------------------------------------------------------------------ control */

typedef struct faults {
    int sign_set;
    CK_RV sign_rv;
    unsigned long sign_delay_ms;
    int login_set;
    CK_RV login_rv;
    int removed;
    char calls_file[1024];
} faults;

static char *trim(char *s) {
    char *end;
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
        *--end = '\0';
    return s;
}

static void parse_line(faults *f, char *line) {
    char *eq, *key, *value;
    line = trim(line);
    if (*line == '\0' || *line == '#') return;
    eq = strchr(line, '=');
    if (eq == NULL) return;
    *eq = '\0';
    key = trim(line);
    value = trim(eq + 1);
    if (strcmp(key, "sign") == 0) {
        f->sign_set = 1;
        f->sign_rv = strtoul(value, NULL, 0);
    } else if (strcmp(key, "sign_delay_ms") == 0) {
        f->sign_delay_ms = strtoul(value, NULL, 0);
    } else if (strcmp(key, "login") == 0) {
        f->login_set = 1;
        f->login_rv = strtoul(value, NULL, 0);
    } else if (strcmp(key, "removed") == 0) {
        f->removed = strtoul(value, NULL, 0) != 0;
    } else if (strcmp(key, "calls_file") == 0) {
        snprintf(f->calls_file, sizeof f->calls_file, "%s", value);
    }
}

/* Read the control file (missing / empty = no faults). Caller holds g_lock. */
static void read_control_locked(faults *f) {
    char buf[8192];
    const char *path = g_control;
    ssize_t n, total = 0;
    int fd;
    char *line, *save = NULL;

    memset(f, 0, sizeof *f);
    if (*path == '\0') return;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    while (total < (ssize_t)sizeof buf - 1) {
        n = read(fd, buf + total, sizeof buf - 1 - total);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        total += n;
    }
    close(fd);
    buf[total] = '\0';
    for (line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
        parse_line(f, line);
}

/* Close every real session once per removal, as a real card pull would. */
static void act_on_removal_locked(const faults *f) {
    CK_ULONG count = 0, i;
    CK_SLOT_ID *slots;

    if (!f->removed) {
        g_seen_removed = 0;
        return;
    }
    if (g_seen_removed) return;
    g_seen_removed = 1;
    if (REAL(IX_GetSlotList, fn_GetSlotList)(0, NULL, &count) != CKR_OK || count == 0) return;
    slots = calloc(count, sizeof *slots);
    if (slots == NULL) return;
    if (REAL(IX_GetSlotList, fn_GetSlotList)(0, slots, &count) == CKR_OK) {
        for (i = 0; i < count; i++) REAL(IX_CloseAllSessions, fn_CloseAllSessions)(slots[i]);
    }
    free(slots);
}

static void log_call_locked(const faults *f, const char *line) {
    int fd;
    size_t len = strlen(line);
    if (f->calls_file[0] == '\0') return;
    fd = open(f->calls_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    if (write(fd, line, len) != (ssize_t)len) { /* best effort */ }
    close(fd);
}

/* Snapshot the faults (and act on a removal) under the lock. */
static void current_faults(faults *f) {
    pthread_mutex_lock(&g_lock);
    read_control_locked(f);
    act_on_removal_locked(f);
    pthread_mutex_unlock(&g_lock);
}

static void log_call(const faults *f, const char *line) {
    pthread_mutex_lock(&g_lock);
    log_call_locked(f, line);
    pthread_mutex_unlock(&g_lock);
}

static void sleep_ms(unsigned long ms) {
    struct timespec ts;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ----------------------------------------------------------------- wrappers */

static CK_RV w_Initialize(void *args) {
    const char *conf = g_conf;
    char *saved = NULL;
    int had = 0;
    CK_RV rv;
    CK_C_INITIALIZE_ARGS os_locking;

    if (args == NULL && g_os_locking) {
        memset(&os_locking, 0, sizeof os_locking);
        os_locking.flags = CKF_OS_LOCKING_OK;
        args = &os_locking;
    }
    pthread_mutex_lock(&g_lock);
    if (*conf != '\0') {
        const char *old = getenv("SOFTHSM2_CONF");
        if (old != NULL) {
            had = 1;
            saved = strdup(old);
        }
        setenv("SOFTHSM2_CONF", conf, 1);
        rv = REAL(IX_Initialize, fn_Initialize)(args);
        if (had && saved != NULL)
            setenv("SOFTHSM2_CONF", saved, 1);
        else
            unsetenv("SOFTHSM2_CONF");
        free(saved);
    } else {
        rv = REAL(IX_Initialize, fn_Initialize)(args);
    }
    g_seen_removed = 0; /* fresh module state: no sessions to close yet */
    pthread_mutex_unlock(&g_lock);
    return rv;
}

static CK_RV w_GetSlotList(CK_BBOOL present, CK_SLOT_ID *list, CK_ULONG *count) {
    faults f;
    current_faults(&f);
    if (f.removed && present) {
        if (count == NULL) return CKR_ARGUMENTS_BAD;
        *count = 0; /* both the size query and the fill call see zero slots */
        return CKR_OK;
    }
    return REAL(IX_GetSlotList, fn_GetSlotList)(present, list, count);
}

static CK_RV w_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO *info) {
    faults f;
    CK_RV rv;
    current_faults(&f);
    rv = REAL(IX_GetSlotInfo, fn_GetSlotInfo)(slot, info);
    if (rv == CKR_OK && f.removed && info != NULL) info->flags &= ~CKF_TOKEN_PRESENT;
    return rv;
}

static CK_RV w_Login(CK_SESSION_HANDLE h, CK_USER_TYPE user, CK_BYTE *pin, CK_ULONG len) {
    faults f;
    char line[64];
    current_faults(&f);
    snprintf(line, sizeof line, "login %lu\n", user);
    log_call(&f, line);
    if (f.removed) return CKR_DEVICE_REMOVED;
    if (f.login_set) return f.login_rv;
    return REAL(IX_Login, fn_Login)(h, user, pin, len);
}

static CK_RV w_Sign(CK_SESSION_HANDLE h, CK_BYTE *data, CK_ULONG dlen, CK_BYTE *sig,
                    CK_ULONG *slen) {
    faults f;
    CK_RV rv;
    current_faults(&f);
    if (f.removed) {
        log_call(&f, "sign\n");
        return CKR_DEVICE_REMOVED;
    }
    if (f.sign_set) {
        CK_ULONG need = 0;
        if (f.sign_delay_ms) sleep_ms(f.sign_delay_ms);
        /* Finish the real operation so the module's state is clean. */
        rv = REAL(IX_Sign, fn_Sign)(h, data, dlen, NULL, &need);
        if (rv == CKR_OK) {
            CK_BYTE *tmp = malloc(need ? need : 1);
            if (tmp != NULL) {
                (void)REAL(IX_Sign, fn_Sign)(h, data, dlen, tmp, &need);
                free(tmp);
            }
        }
        log_call(&f, "sign\n");
        return f.sign_rv;
    }
    if (sig != NULL && f.sign_delay_ms) sleep_ms(f.sign_delay_ms);
    rv = REAL(IX_Sign, fn_Sign)(h, data, dlen, sig, slen);
    if (!(sig == NULL && (rv == CKR_OK || rv == CKR_BUFFER_TOO_SMALL))) log_call(&f, "sign\n");
    return rv;
}

/*
 * Wrappers that only add the "removed" behaviour. PARAMS is the parameter
 * list, ARGS the argument list; pointer types are void * (same ABI).
 */
#define REMOVABLE(name, ix, removed_rv, params, args)                  \
    static CK_RV w_##name params {                                      \
        faults f;                                                       \
        current_faults(&f);                                             \
        if (f.removed) return (removed_rv);                             \
        return ((CK_RV(*) params)g_real->fn[(ix)]) args;                \
    }

REMOVABLE(GetTokenInfo, IX_GetTokenInfo, CKR_TOKEN_NOT_PRESENT,
          (CK_SLOT_ID s, void *i), (s, i))
REMOVABLE(GetMechanismList, IX_GetMechanismList, CKR_TOKEN_NOT_PRESENT,
          (CK_SLOT_ID s, void *l, CK_ULONG *c), (s, l, c))
REMOVABLE(GetMechanismInfo, IX_GetMechanismInfo, CKR_TOKEN_NOT_PRESENT,
          (CK_SLOT_ID s, CK_ULONG t, void *i), (s, t, i))
REMOVABLE(OpenSession, IX_OpenSession, CKR_TOKEN_NOT_PRESENT,
          (CK_SLOT_ID s, CK_FLAGS fl, void *app, void *notify, CK_SESSION_HANDLE *h),
          (s, fl, app, notify, h))
REMOVABLE(GetSessionInfo, IX_GetSessionInfo, CKR_DEVICE_REMOVED,
          (CK_SESSION_HANDLE h, void *i), (h, i))
REMOVABLE(Logout, IX_Logout, CKR_DEVICE_REMOVED, (CK_SESSION_HANDLE h), (h))
REMOVABLE(CreateObject, IX_CreateObject, CKR_DEVICE_REMOVED,
          (CK_SESSION_HANDLE h, void *t, CK_ULONG n, CK_OBJECT_HANDLE *o), (h, t, n, o))
REMOVABLE(DestroyObject, IX_DestroyObject, CKR_DEVICE_REMOVED,
          (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o), (h, o))
REMOVABLE(GetAttributeValue, IX_GetAttributeValue, CKR_DEVICE_REMOVED,
          (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, void *t, CK_ULONG n), (h, o, t, n))
REMOVABLE(SetAttributeValue, IX_SetAttributeValue, CKR_DEVICE_REMOVED,
          (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, void *t, CK_ULONG n), (h, o, t, n))
REMOVABLE(FindObjectsInit, IX_FindObjectsInit, CKR_DEVICE_REMOVED,
          (CK_SESSION_HANDLE h, void *t, CK_ULONG n), (h, t, n))
REMOVABLE(FindObjects, IX_FindObjects, CKR_DEVICE_REMOVED,
          (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE *o, CK_ULONG m, CK_ULONG *c), (h, o, m, c))
REMOVABLE(FindObjectsFinal, IX_FindObjectsFinal, CKR_DEVICE_REMOVED,
          (CK_SESSION_HANDLE h), (h))
REMOVABLE(EncryptInit, IX_EncryptInit, CKR_DEVICE_REMOVED,
          (CK_SESSION_HANDLE h, void *m, CK_OBJECT_HANDLE k), (h, m, k))
REMOVABLE(Encrypt, IX_Encrypt, CKR_DEVICE_REMOVED,
          (CK_SESSION_HANDLE h, CK_BYTE *d, CK_ULONG n, CK_BYTE *o, CK_ULONG *on),
          (h, d, n, o, on))
REMOVABLE(DecryptInit, IX_DecryptInit, CKR_DEVICE_REMOVED,
          (CK_SESSION_HANDLE h, void *m, CK_OBJECT_HANDLE k), (h, m, k))
REMOVABLE(Decrypt, IX_Decrypt, CKR_DEVICE_REMOVED,
          (CK_SESSION_HANDLE h, CK_BYTE *d, CK_ULONG n, CK_BYTE *o, CK_ULONG *on),
          (h, d, n, o, on))
REMOVABLE(DigestInit, IX_DigestInit, CKR_DEVICE_REMOVED,
          (CK_SESSION_HANDLE h, void *m), (h, m))
REMOVABLE(Digest, IX_Digest, CKR_DEVICE_REMOVED,
          (CK_SESSION_HANDLE h, CK_BYTE *d, CK_ULONG n, CK_BYTE *o, CK_ULONG *on),
          (h, d, n, o, on))
REMOVABLE(SignInit, IX_SignInit, CKR_DEVICE_REMOVED,
          (CK_SESSION_HANDLE h, void *m, CK_OBJECT_HANDLE k), (h, m, k))
REMOVABLE(SignUpdate, IX_SignUpdate, CKR_DEVICE_REMOVED,
          (CK_SESSION_HANDLE h, CK_BYTE *d, CK_ULONG n), (h, d, n))
REMOVABLE(SignFinal, IX_SignFinal, CKR_DEVICE_REMOVED,
          (CK_SESSION_HANDLE h, CK_BYTE *o, CK_ULONG *on), (h, o, on))
REMOVABLE(VerifyInit, IX_VerifyInit, CKR_DEVICE_REMOVED,
          (CK_SESSION_HANDLE h, void *m, CK_OBJECT_HANDLE k), (h, m, k))
REMOVABLE(Verify, IX_Verify, CKR_DEVICE_REMOVED,
          (CK_SESSION_HANDLE h, CK_BYTE *d, CK_ULONG n, CK_BYTE *s, CK_ULONG sn),
          (h, d, n, s, sn))
REMOVABLE(GenerateKey, IX_GenerateKey, CKR_DEVICE_REMOVED,
          (CK_SESSION_HANDLE h, void *m, void *t, CK_ULONG n, CK_OBJECT_HANDLE *k),
          (h, m, t, n, k))
REMOVABLE(GenerateKeyPair, IX_GenerateKeyPair, CKR_DEVICE_REMOVED,
          (CK_SESSION_HANDLE h, void *m, void *pt, CK_ULONG pn, void *vt, CK_ULONG vn,
           CK_OBJECT_HANDLE *pk, CK_OBJECT_HANDLE *vk),
          (h, m, pt, pn, vt, vn, pk, vk))
REMOVABLE(GenerateRandom, IX_GenerateRandom, CKR_DEVICE_REMOVED,
          (CK_SESSION_HANDLE h, CK_BYTE *o, CK_ULONG n), (h, o, n))

/* ------------------------------------------------------------------- export */

CK_RV C_GetFunctionList(CK_FUNCTION_LIST **out) __attribute__((visibility("default")));

static CK_RV load_locked(void) {
    const char *target = getenv("FAULTSHIM_TARGET");
    const char *control = getenv("FAULTSHIM_CONTROL");
    const char *conf = getenv("FAULTSHIM_SOFTHSM2_CONF");
    CK_RV (*get_list)(CK_FUNCTION_LIST **);
    void *handle;
    CK_RV rv;

    if (g_loaded) return CKR_OK;
    if (target == NULL || *target == '\0') {
        fprintf(stderr, "faultshim: FAULTSHIM_TARGET is not set\n");
        return CKR_GENERAL_ERROR;
    }
    handle = dlopen(target, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        fprintf(stderr, "faultshim: cannot load %s: %s\n", target, dlerror());
        return CKR_GENERAL_ERROR;
    }
    *(void **)(&get_list) = dlsym(handle, "C_GetFunctionList");
    if (get_list == NULL) {
        fprintf(stderr, "faultshim: %s has no C_GetFunctionList\n", target);
        dlclose(handle);
        return CKR_GENERAL_ERROR;
    }
    rv = get_list(&g_real);
    if (rv != CKR_OK || g_real == NULL) {
        dlclose(handle);
        g_real = NULL;
        return rv != CKR_OK ? rv : CKR_GENERAL_ERROR;
    }
    /* Never dlclose: function pointers may outlive any caller's handle. */
    snprintf(g_control, sizeof g_control, "%s", control ? control : "");
    snprintf(g_conf, sizeof g_conf, "%s", conf ? conf : "");
    g_os_locking = getenv("FAULTSHIM_OS_LOCKING") != NULL &&
                   strcmp(getenv("FAULTSHIM_OS_LOCKING"), "1") == 0;
    memcpy(&g_list, g_real, sizeof g_list);

    g_list.fn[IX_Initialize] = (void *)w_Initialize;
    g_list.fn[IX_GetFunctionList] = (void *)C_GetFunctionList;
    g_list.fn[IX_GetSlotList] = (void *)w_GetSlotList;
    g_list.fn[IX_GetSlotInfo] = (void *)w_GetSlotInfo;
    g_list.fn[IX_GetTokenInfo] = (void *)w_GetTokenInfo;
    g_list.fn[IX_GetMechanismList] = (void *)w_GetMechanismList;
    g_list.fn[IX_GetMechanismInfo] = (void *)w_GetMechanismInfo;
    g_list.fn[IX_OpenSession] = (void *)w_OpenSession;
    g_list.fn[IX_GetSessionInfo] = (void *)w_GetSessionInfo;
    g_list.fn[IX_Login] = (void *)w_Login;
    g_list.fn[IX_Logout] = (void *)w_Logout;
    g_list.fn[IX_CreateObject] = (void *)w_CreateObject;
    g_list.fn[IX_DestroyObject] = (void *)w_DestroyObject;
    g_list.fn[IX_GetAttributeValue] = (void *)w_GetAttributeValue;
    g_list.fn[IX_SetAttributeValue] = (void *)w_SetAttributeValue;
    g_list.fn[IX_FindObjectsInit] = (void *)w_FindObjectsInit;
    g_list.fn[IX_FindObjects] = (void *)w_FindObjects;
    g_list.fn[IX_FindObjectsFinal] = (void *)w_FindObjectsFinal;
    g_list.fn[IX_EncryptInit] = (void *)w_EncryptInit;
    g_list.fn[IX_Encrypt] = (void *)w_Encrypt;
    g_list.fn[IX_DecryptInit] = (void *)w_DecryptInit;
    g_list.fn[IX_Decrypt] = (void *)w_Decrypt;
    g_list.fn[IX_DigestInit] = (void *)w_DigestInit;
    g_list.fn[IX_Digest] = (void *)w_Digest;
    g_list.fn[IX_SignInit] = (void *)w_SignInit;
    g_list.fn[IX_Sign] = (void *)w_Sign;
    g_list.fn[IX_SignUpdate] = (void *)w_SignUpdate;
    g_list.fn[IX_SignFinal] = (void *)w_SignFinal;
    g_list.fn[IX_VerifyInit] = (void *)w_VerifyInit;
    g_list.fn[IX_Verify] = (void *)w_Verify;
    g_list.fn[IX_GenerateKey] = (void *)w_GenerateKey;
    g_list.fn[IX_GenerateKeyPair] = (void *)w_GenerateKeyPair;
    g_list.fn[IX_GenerateRandom] = (void *)w_GenerateRandom;
    g_loaded = 1;
    return CKR_OK;
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST **out) {
    CK_RV rv;
    if (out == NULL) return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&g_lock);
    rv = load_locked();
    pthread_mutex_unlock(&g_lock);
    if (rv != CKR_OK) return rv;
    *out = &g_list;
    return CKR_OK;
}
