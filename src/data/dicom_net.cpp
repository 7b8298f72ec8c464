/* dicom_net.cpp - DICOM networking for the triage node: C-STORE/C-ECHO SCP
 * (one thread per association, a cap on associations, allow-list and
 * durability hooks), C-STORE SCU, and the two result objects (Comprehensive
 * SR, RGB secondary capture). Part of the one DCMTK shim: callers see the C
 * API declared in dicom.h ("networking" block).
 *
 * DCMTK 3.6.7 facts this file works around (engineering notes, section 4):
 * it listens on the wildcard address (we re-bind the listening socket), it
 * has no association cap (we count threads), it accepts every calling AE
 * (the accept hook decides) and never fsyncs (the store hook does, before
 * DCMTK sends the C-STORE-RSP, which happens after the hook returns).
 */
#include "dcmtk/config/osconfig.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <thread>

#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmdata/dcvrobow.h"
#include "dcmtk/dcmnet/assoc.h"
#include "dcmtk/dcmnet/dcmtrans.h"
#include "dcmtk/dcmnet/dimse.h"
#include "dcmtk/dcmnet/diutil.h"
#include "dcmtk/dcmnet/dul.h"
#include "dcmtk/dcmsr/dsrdoc.h"
#include "dcmtk/dcmtls/tlslayer.h"
#include "dcmtk/oflog/oflog.h"

extern "C" {
#include "data/dicom.h"
}

namespace {

/* Transfer syntaxes accepted for storage, preferred first: lossless
 * compressed ones as the modality holds them (no conversion on its side),
 * then uncompressed, then lossy ones last so that a peer offering both is
 * never asked to degrade an image. The reader decodes them all (JPEG 2000
 * via OpenJPEG). */
const char *const k_storage_ts[] = {
    UID_JPEGProcess14SV1TransferSyntax,     UID_JPEGProcess14TransferSyntax,
    UID_JPEGLSLosslessTransferSyntax,       UID_JPEG2000LosslessOnlyTransferSyntax,
    UID_RLELosslessTransferSyntax,          UID_LittleEndianExplicitTransferSyntax,
    UID_LittleEndianImplicitTransferSyntax, UID_BigEndianExplicitTransferSyntax,
    UID_JPEGLSLossyTransferSyntax,          UID_JPEG2000TransferSyntax,
    UID_JPEGProcess1TransferSyntax,         UID_JPEGProcess2_4TransferSyntax,
};
const int k_n_storage_ts = (int)(sizeof k_storage_ts / sizeof k_storage_ts[0]);

void quiet_dcmtk_once() {
    static std::once_flag once;
    std::call_once(once, [] {
        /* DCMTK logs to stderr by default; the node keeps its own JSON log. */
        OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
        /* Peer host as a numeric address: no DNS lookups per association. */
        dcmDisableGethostbyaddr.set(OFTrue);
    });
}

int fsync_path(const char *path, int dir) {
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

std::string dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return ".";
    if (slash == path) return "/";
    return std::string(path, (size_t)(slash - path));
}

/* Save a file format atomically: temp file, fsync, rename, fsync folder. */
fa_status save_atomic(DcmFileFormat &ff, const char *path, fa_error *err) {
    std::string tmp = std::string(path) + ".tmp";
    OFCondition c = ff.saveFile(tmp.c_str(), EXS_LittleEndianExplicit);
    if (c.bad()) {
        unlink(tmp.c_str());
        return fa_error_set(err, FA_ERR_IO, "%s: cannot write: %s", path, c.text());
    }
    if (fsync_path(tmp.c_str(), 0) != 0 || rename(tmp.c_str(), path) != 0) {
        int e = errno;
        unlink(tmp.c_str());
        return fa_error_set(err, FA_ERR_IO, "%s: cannot commit: %s", path, strerror(e));
    }
    fsync_path(dir_of(path).c_str(), 1);
    return FA_OK;
}

void copy_str(char *dst, size_t cap, const char *src) {
    if (cap == 0) return;
    OFStandard::strlcpy(dst, src ? src : "", cap);
}

} // namespace

/* ------------------------------------------------------------------------ */
/* SCP                                                                       */

struct dicom_net_scp {
    dicom_net_scp_opts o;
    T_ASC_Network *net;
    bool tls;
    std::atomic<int> active;
    std::atomic<unsigned long> seq;
};

namespace {

struct store_ctx {
    dicom_net_scp *scp;
    const dicom_net_peer *peer;
    const char *path;
    long long bytes;
    DcmDataset *detail;    /* status detail (Error Comment), owned here */
};

void log_event(dicom_net_scp *scp, const char *event, const dicom_net_peer *peer, const char *detail) {
    if (scp->o.on_log) scp->o.on_log(scp->o.user, event, peer, detail);
}

void store_progress(void *data, T_DIMSE_StoreProgress *progress, T_DIMSE_C_StoreRQ *req, char *file,
                    DcmDataset **, T_DIMSE_C_StoreRSP *rsp, DcmDataset **status_detail) {
    store_ctx *ctx = (store_ctx *)data;
    if (progress->state == DIMSE_StoreProgressing) {
        ctx->bytes = progress->progressBytes;
        return;
    }
    if (progress->state != DIMSE_StoreEnd) return;
    ctx->bytes = progress->progressBytes;
    dicom_net_object obj;
    obj.path = ctx->path;
    obj.sop_class_uid = req->AffectedSOPClassUID;
    obj.sop_instance_uid = req->AffectedSOPInstanceUID;
    obj.bytes = ctx->bytes;
    obj.peer = ctx->peer;
    char comment[256] = "";
    unsigned st;
    long long cap = ctx->scp->o.max_object_bytes;
    if (cap > 0 && ctx->bytes > cap) {
        st = STATUS_STORE_Refused_OutOfResources;
        snprintf(comment, sizeof comment, "object of %lld bytes exceeds the limit of %lld", ctx->bytes, cap);
        char detail[300];
        snprintf(detail, sizeof detail, "status 0x%04X: %s", st, comment);
        log_event(ctx->scp, "store_refused", ctx->peer, detail);
    } else {
        st = ctx->scp->o.on_store(ctx->scp->o.user, &obj, comment, sizeof comment);
    }
    (void)file;
    rsp->DimseStatus = (Uint16)st;
    if (st != STATUS_Success && comment[0]) {
        ctx->detail = new (std::nothrow) DcmDataset;
        if (ctx->detail) {
            comment[64] = '\0'; /* Error Comment is LO: 64 characters */
            ctx->detail->putAndInsertString(DCM_ErrorComment, comment);
            *status_detail = ctx->detail;
        }
    }
}

void handle_store(dicom_net_scp *scp, T_ASC_Association *assoc, T_ASC_PresentationContextID pres,
                  T_DIMSE_C_StoreRQ *req, const dicom_net_peer *peer) {
    /* The partial file's name is ours (sequence number), never the peer's UID. */
    char path[4096];
    snprintf(path, sizeof path, "%s/%ld-%lu.part", scp->o.spool_dir, (long)getpid(), scp->seq.fetch_add(1));
    store_ctx ctx;
    ctx.scp = scp;
    ctx.peer = peer;
    ctx.path = path;
    ctx.bytes = 0;
    ctx.detail = NULL;
    OFCondition c = DIMSE_storeProvider(assoc, pres, req, path, OFTrue, NULL, store_progress, &ctx,
                                        DIMSE_NONBLOCKING, scp->o.dimse_timeout_s);
    if (c.bad()) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", c.text());
        log_event(scp, "store_failed", peer, msg);
    }
    unlink(path);
    delete ctx.detail;
}

void serve_association(dicom_net_scp *scp, T_ASC_Association *assoc, dicom_net_peer peer) {
    for (;;) {
        T_DIMSE_Message msg;
        T_ASC_PresentationContextID pres = 0;
        OFCondition c = DIMSE_receiveCommand(assoc, DIMSE_NONBLOCKING, scp->o.dimse_timeout_s, &pres, &msg, NULL);
        if (c == DUL_PEERREQUESTEDRELEASE) {
            ASC_acknowledgeRelease(assoc);
            break;
        }
        if (c == DUL_PEERABORTEDASSOCIATION) {
            log_event(scp, "assoc_aborted_by_peer", &peer, "");
            break;
        }
        if (c.bad()) {
            log_event(scp, "assoc_aborted", &peer, c == DIMSE_NODATAAVAILABLE ? "DIMSE timeout" : c.text());
            ASC_abortAssociation(assoc);
            break;
        }
        if (msg.CommandField == DIMSE_C_ECHO_RQ) {
            DIMSE_sendEchoResponse(assoc, pres, &msg.msg.CEchoRQ, STATUS_Success, NULL);
        } else if (msg.CommandField == DIMSE_C_STORE_RQ) {
            handle_store(scp, assoc, pres, &msg.msg.CStoreRQ, &peer);
        } else {
            char d[64];
            snprintf(d, sizeof d, "unsupported command 0x%04x", (unsigned)msg.CommandField);
            log_event(scp, "assoc_aborted", &peer, d);
            ASC_abortAssociation(assoc);
            break;
        }
    }
    ASC_dropSCPAssociation(assoc);
    ASC_destroyAssociation(&assoc);
    scp->active.fetch_sub(1);
}

void reject(T_ASC_Association *assoc, T_ASC_RejectParametersResult result, T_ASC_RejectParametersSource source,
            T_ASC_RejectParametersReason reason) {
    T_ASC_RejectParameters rej;
    rej.result = result;
    rej.source = source;
    rej.reason = reason;
    ASC_rejectAssociation(assoc, &rej);
}

/* Negotiate one incoming association; hands it to a thread when accepted. */
void accept_one(dicom_net_scp *scp, T_ASC_Association *assoc) {
    dicom_net_peer peer;
    memset(&peer, 0, sizeof peer);
    char calling[65] = "", called[65] = "", resp[65] = "", caddr[128] = "", daddr[128] = "";
    ASC_getAPTitles(assoc->params, calling, sizeof calling, called, sizeof called, resp, sizeof resp);
    ASC_getPresentationAddresses(assoc->params, caddr, sizeof caddr, daddr, sizeof daddr);
    copy_str(peer.calling_ae, sizeof peer.calling_ae, calling);
    copy_str(peer.called_ae, sizeof peer.called_ae, called);
    copy_str(peer.host, sizeof peer.host, caddr);

    if (!peer.calling_ae[0] && !peer.called_ae[0]) {
        /* DCMTK hands over a connection closed before any A-ASSOCIATE-RQ
         * (a port probe) as an association without parameters. */
        log_event(scp, "assoc_failed", &peer, "connection closed before an association request");
        ASC_dropAssociation(assoc);
        ASC_destroyAssociation(&assoc);
        return;
    }
    dicom_net_verdict v = scp->o.on_accept(scp->o.user, &peer);
    if (v != DICOM_NET_ACCEPT) {
        static const char *const why[] = {"", "calling AE title not allowed", "called AE title not ours",
                                          "host not allowed"};
        log_event(scp, "assoc_rejected", &peer, why[v]);
        reject(assoc, ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER,
               v == DICOM_NET_REJECT_CALLING_AE  ? ASC_REASON_SU_CALLINGAETITLENOTRECOGNIZED
               : v == DICOM_NET_REJECT_CALLED_AE ? ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED
                                                 : ASC_REASON_SU_NOREASON);
        ASC_dropAssociation(assoc);
        ASC_destroyAssociation(&assoc);
        return;
    }
    if (scp->active.load() >= scp->o.max_associations) {
        log_event(scp, "assoc_rejected", &peer, "association limit reached");
        reject(assoc, ASC_RESULT_REJECTEDTRANSIENT, ASC_SOURCE_SERVICEPROVIDER_PRESENTATION_RELATED,
               ASC_REASON_SP_PRES_LOCALLIMITEXCEEDED);
        ASC_dropAssociation(assoc);
        ASC_destroyAssociation(&assoc);
        return;
    }
    const char *echo[] = {UID_VerificationSOPClass};
    const char *echo_ts[] = {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax};
    OFCondition c = ASC_acceptContextsWithPreferredTransferSyntaxes(assoc->params, echo, 1, echo_ts, 2);
    if (c.good() && scp->o.n_sop_classes > 0)
        c = ASC_acceptContextsWithPreferredTransferSyntaxes(assoc->params, (const char **)scp->o.sop_classes,
                                                            scp->o.n_sop_classes, (const char **)k_storage_ts,
                                                            k_n_storage_ts);
    if (c.good()) c = ASC_acknowledgeAssociation(assoc);
    if (c.bad()) {
        log_event(scp, "assoc_failed", &peer, c.text());
        ASC_dropAssociation(assoc);
        ASC_destroyAssociation(&assoc);
        return;
    }
    scp->active.fetch_add(1);
    try {
        std::thread(serve_association, scp, assoc, peer).detach();
    } catch (...) {
        scp->active.fetch_sub(1);
        log_event(scp, "assoc_aborted", &peer, "cannot start a thread");
        ASC_abortAssociation(assoc);
        ASC_dropAssociation(assoc);
        ASC_destroyAssociation(&assoc);
    }
}

} // namespace

namespace {

/* TLS on the listening network: BCP 195 profile, our key and certificate,
 * client certificates required and verified against the CA file. */
fa_status setup_tls(dicom_net_scp *scp, const dicom_net_scp_opts *o, fa_error *err) {
    if (!o->tls_key || !o->tls_cert || !o->tls_ca)
        return fa_error_set(err, FA_ERR_ARG, "TLS needs a key, a certificate and a CA file");
    DcmTLSTransportLayer *tls = new (std::nothrow) DcmTLSTransportLayer(NET_ACCEPTOR, NULL, OFTrue);
    if (!tls) return fa_error_set(err, FA_ERR_NOMEM, "out of memory");
    const char *what = o->tls_key;
    OFCondition c = tls->setTLSProfile(TSP_Profile_BCP195);
    if (c.good()) c = tls->activateCipherSuites();
    if (c.good()) c = tls->setPrivateKeyFile(o->tls_key, DCF_Filetype_PEM);
    if (c.good()) {
        what = o->tls_cert;
        c = tls->setCertificateFile(o->tls_cert, DCF_Filetype_PEM);
    }
    if (c.good() && !tls->checkPrivateKeyMatchesCertificate())
        c = makeOFCondition(0, 1, OF_error, "private key does not match the certificate");
    if (c.good()) {
        what = o->tls_ca;
        c = tls->addTrustedCertificateFile(o->tls_ca, DCF_Filetype_PEM);
    }
    if (c.bad()) {
        delete tls;
        return fa_error_set(err, FA_ERR_IO, "%s: TLS setup failed: %s", what, c.text());
    }
    tls->setCertificateVerification(DCV_requireCertificate);
    c = ASC_setTransportLayer(scp->net, tls, 1);
    if (c.bad()) {
        delete tls;
        return fa_error_set(err, FA_ERR_BACKEND, "TLS: %s", c.text());
    }
    scp->tls = true;
    return FA_OK;
}

} // namespace

extern "C" fa_status dicom_net_scp_open(dicom_net_scp **out, const dicom_net_scp_opts *o, fa_error *err) {
    *out = NULL;
    struct in_addr ia;
    if (!o->bind_addr || inet_pton(AF_INET, o->bind_addr, &ia) != 1)
        return fa_error_set(err, FA_ERR_ARG, "bind address '%s' is not a numeric IPv4 address",
                            o->bind_addr ? o->bind_addr : "");
    if (o->port < 1 || o->port > 65535) return fa_error_set(err, FA_ERR_ARG, "port %d out of range", o->port);
    if (o->max_associations < 1 || !o->on_accept || !o->on_store || !o->spool_dir)
        return fa_error_set(err, FA_ERR_ARG, "SCP options incomplete");
    quiet_dcmtk_once();
    dicom_net_scp *scp = new (std::nothrow) dicom_net_scp;
    if (!scp) return fa_error_set(err, FA_ERR_NOMEM, "out of memory");
    scp->o = *o;
    scp->net = NULL;
    scp->tls = false;
    scp->active = 0;
    scp->seq = 0;
    OFCondition c = ASC_initializeNetwork(NET_ACCEPTOR, o->port, o->acse_timeout_s, &scp->net);
    if (c.bad()) {
        delete scp;
        return fa_error_set(err, FA_ERR_IO, "port %d: cannot listen: %s", o->port, c.text());
    }
    /* Swap DCMTK's wildcard listening socket for one bound to bind_addr,
     * keeping the descriptor number DCMTK knows. Done before any other
     * thread of the node exists, so the number cannot be taken meanwhile. */
    int fd = (int)DUL_networkSocket(scp->net->network);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)o->port);
    sa.sin_addr = ia;
    int ok = fd >= 0 && s >= 0 && setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0;
    if (ok) close(fd);
    ok = ok && bind(s, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(s, 64) == 0 && dup2(s, fd) == fd;
    int e = errno;
    if (s >= 0) close(s);
    if (!ok) {
        ASC_dropNetwork(&scp->net);
        delete scp;
        return fa_error_set(err, FA_ERR_IO, "%s:%d: cannot bind: %s", o->bind_addr, o->port, strerror(e));
    }
    if (o->tls_key || o->tls_cert || o->tls_ca) {
        fa_status st = setup_tls(scp, o, err);
        if (st != FA_OK) {
            ASC_dropNetwork(&scp->net);
            delete scp;
            return st;
        }
    }
    *out = scp;
    return FA_OK;
}

extern "C" fa_status dicom_net_scp_run(dicom_net_scp *scp, volatile int *stop, fa_error *err) {
    while (!*stop) {
        if (!ASC_associationWaiting(scp->net, 0)) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            continue;
        }
        T_ASC_Association *assoc = NULL;
        OFCondition c = ASC_receiveAssociation(scp->net, &assoc, (long)scp->o.max_pdu, NULL, NULL, scp->tls,
                                               DUL_NOBLOCK, scp->o.acse_timeout_s);
        if (c.bad()) {
            /* garbage, a wrong protocol or an ACSE timeout: drop, log, go on */
            log_event(scp, "assoc_failed", NULL, c.text());
            if (assoc) {
                ASC_dropAssociation(assoc);
                ASC_destroyAssociation(&assoc);
            }
            continue;
        }
        accept_one(scp, assoc);
    }
    /* Let running associations finish; each ends within the DIMSE timeout. */
    for (int i = 0; i < (scp->o.dimse_timeout_s + 5) * 20 && scp->active.load() > 0; i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    (void)err;
    return FA_OK;
}

extern "C" int dicom_net_scp_active(const dicom_net_scp *scp) {
    return scp->active.load();
}

extern "C" void dicom_net_scp_close(dicom_net_scp *scp) {
    if (!scp) return;
    if (scp->net) ASC_dropNetwork(&scp->net);
    /* Threads still running after run()'s wait hold scp: leak it rather than
     * free memory they use (only happens with a wedged peer at shutdown). */
    if (scp->active.load() == 0) delete scp;
}

/* ------------------------------------------------------------------------ */
/* SCU                                                                       */

extern "C" fa_status dicom_net_send_file(const dicom_net_scu_opts *o, const char *path, unsigned *status,
                                         fa_error *err) {
    *status = 0xFFFF;
    quiet_dcmtk_once();
    DcmFileFormat ff;
    OFCondition c = ff.loadFile(path);
    if (c.bad()) return fa_error_set(err, FA_ERR_IO, "%s: cannot read: %s", path, c.text());
    DcmDataset *ds = ff.getDataset();
    OFString cls, inst;
    ds->findAndGetOFString(DCM_SOPClassUID, cls);
    ds->findAndGetOFString(DCM_SOPInstanceUID, inst);
    if (cls.empty() || inst.empty()) return fa_error_set(err, FA_ERR_FORMAT, "%s: no SOP class/instance UID", path);
    E_TransferSyntax xfer = ds->getOriginalXfer();
    DcmXfer dx(xfer);

    T_ASC_Network *net = NULL;
    T_ASC_Parameters *params = NULL;
    T_ASC_Association *assoc = NULL;
    fa_status st = FA_OK;
    char peer[300];
    snprintf(peer, sizeof peer, "%s:%d", o->host, o->port);
    c = ASC_initializeNetwork(NET_REQUESTOR, 0, o->timeout_s, &net);
    if (c.good()) c = ASC_createAssociationParameters(&params, (long)(o->max_pdu ? o->max_pdu : 16384));
    if (c.bad()) {
        st = fa_error_set(err, FA_ERR_IO, "%s: network setup failed: %s", peer, c.text());
        goto done;
    }
    ASC_setAPTitles(params, o->calling_ae, o->called_ae, NULL);
    ASC_setPresentationAddresses(params, "localhost", peer);
    {
        const char *ts[3];
        int n = 0;
        if (xfer != EXS_LittleEndianExplicit && xfer != EXS_LittleEndianImplicit && xfer != EXS_Unknown)
            ts[n++] = dx.getXferID();
        ts[n++] = UID_LittleEndianExplicitTransferSyntax;
        ts[n++] = UID_LittleEndianImplicitTransferSyntax;
        c = ASC_addPresentationContext(params, 1, cls.c_str(), ts, n);
    }
    if (c.good()) c = ASC_requestAssociation(net, params, &assoc);
    if (c.bad()) {
        /* params belong to the association once it exists */
        if (!assoc) ASC_destroyAssociationParameters(&params);
        params = NULL;
        st = fa_error_set(err, FA_ERR_IO, "%s: association failed: %s", peer, c.text());
        goto done;
    }
    params = NULL;
    {
        T_ASC_PresentationContextID pid = ASC_findAcceptedPresentationContextID(assoc, cls.c_str());
        if (pid == 0) {
            st = fa_error_set(err, FA_ERR_BACKEND, "%s: peer accepted no context for %s", peer, cls.c_str());
            ASC_releaseAssociation(assoc);
            goto done;
        }
        T_ASC_PresentationContext pc;
        ASC_findAcceptedPresentationContext(assoc->params, pid, &pc);
        DcmXfer accepted(pc.acceptedTransferSyntax);
        if (accepted.getXfer() != xfer) {
            c = ds->chooseRepresentation(accepted.getXfer(), NULL);
            if (c.bad()) {
                st = fa_error_set(err, FA_ERR_BACKEND, "%s: cannot convert to %s", path, accepted.getXferName());
                ASC_releaseAssociation(assoc);
                goto done;
            }
        }
        T_DIMSE_C_StoreRQ req;
        T_DIMSE_C_StoreRSP rsp;
        memset(&req, 0, sizeof req);
        memset(&rsp, 0, sizeof rsp);
        req.MessageID = assoc->nextMsgID++;
        OFStandard::strlcpy(req.AffectedSOPClassUID, cls.c_str(), sizeof req.AffectedSOPClassUID);
        OFStandard::strlcpy(req.AffectedSOPInstanceUID, inst.c_str(), sizeof req.AffectedSOPInstanceUID);
        req.DataSetType = DIMSE_DATASET_PRESENT;
        req.Priority = DIMSE_PRIORITY_MEDIUM;
        DcmDataset *detail = NULL;
        c = DIMSE_storeUser(assoc, pid, &req, NULL, ds, NULL, NULL, DIMSE_NONBLOCKING, o->timeout_s, &rsp, &detail);
        delete detail;
        if (c.bad()) {
            st = fa_error_set(err, FA_ERR_IO, "%s: C-STORE of %s failed: %s", peer, path, c.text());
            ASC_abortAssociation(assoc);
            goto done;
        }
        *status = rsp.DimseStatus;
        ASC_releaseAssociation(assoc);
        if (rsp.DimseStatus != STATUS_Success && (rsp.DimseStatus & 0xF000) != 0xB000)
            st = fa_error_set(err, FA_ERR_BACKEND, "%s: C-STORE of %s refused with status 0x%04x", peer, path,
                              (unsigned)rsp.DimseStatus);
    }
done:
    if (assoc) {
        ASC_dropAssociation(assoc);
        ASC_destroyAssociation(&assoc);
    }
    if (params) ASC_destroyAssociationParameters(&params);
    if (net) ASC_dropNetwork(&net);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Result objects                                                            */

namespace {

/* Patient and study attributes a derived object shares with its source. */
const DcmTagKey k_shared_tags[] = {
    DCM_PatientName,      DCM_PatientID,   DCM_PatientBirthDate,   DCM_PatientSex,  DCM_StudyInstanceUID,
    DCM_StudyDate,        DCM_StudyTime,   DCM_AccessionNumber,    DCM_StudyID,     DCM_ReferringPhysicianName,
    DCM_StudyDescription, DCM_IssuerOfPatientID, DCM_SpecificCharacterSet,
};

fa_status load_source(const char *source_path, DcmFileFormat &src, fa_error *err) {
    OFCondition c = src.loadFile(source_path, EXS_Unknown, EGL_noChange, 4096);
    if (c.bad()) return fa_error_set(err, FA_ERR_IO, "%s: cannot read source: %s", source_path, c.text());
    OFString study;
    src.getDataset()->findAndGetOFString(DCM_StudyInstanceUID, study);
    if (study.empty()) return fa_error_set(err, FA_ERR_FORMAT, "%s: source has no Study Instance UID", source_path);
    return FA_OK;
}

void copy_shared(DcmDataset *src, DcmDataset *dst) {
    for (const DcmTagKey &k : k_shared_tags) {
        DcmElement *e = NULL;
        if (src->findAndGetElement(k, e).good() && e) {
            DcmElement *copy = (DcmElement *)e->clone();
            if (copy && dst->insert(copy, OFTrue).bad()) delete copy;
        } else if (k == DCM_PatientName || k == DCM_PatientID || k == DCM_PatientBirthDate || k == DCM_PatientSex ||
                   k == DCM_StudyDate || k == DCM_StudyTime || k == DCM_AccessionNumber || k == DCM_StudyID ||
                   k == DCM_ReferringPhysicianName) {
            dst->putAndInsertString(k, ""); /* type 2: present, empty */
        }
    }
}

std::string fmt_num(double v) {
    char b[32];
    snprintf(b, sizeof b, "%.6f", v);
    return b;
}

} // namespace

extern "C" fa_status dicom_net_write_sr(const char *source_path, const dicom_net_result *r, const char *sr_path,
                                        char *sop_uid_out, fa_error *err) {
    quiet_dcmtk_once();
    DcmFileFormat src;
    fa_status st = load_source(source_path, src, err);
    if (st != FA_OK) return st;
    DcmDataset *sds = src.getDataset();
    OFString study, src_cls, src_inst;
    sds->findAndGetOFString(DCM_StudyInstanceUID, study);
    sds->findAndGetOFString(DCM_SOPClassUID, src_cls);
    sds->findAndGetOFString(DCM_SOPInstanceUID, src_inst);

    DSRDocument doc(DSRTypes::DT_ComprehensiveSR);
    OFCondition c = doc.createNewSeriesInStudy(study);
    if (c.good()) c = doc.setManufacturer("freeair");
    if (c.good()) c = doc.setSeriesDescription("AI triage: pneumoperitoneum");
    DSRDocumentTree &t = doc.getTree();
    const bool positive = r->decision == 1;
    if (c.good() && t.addContentItem(DSRTypes::RT_isRoot, DSRTypes::VT_Container) == 0) c = EC_IllegalCall;
    if (c.good())
        c = t.getCurrentContentItem().setConceptName(
            DSRCodedEntryValue("FA0001", "99FREEAIR", "Pneumoperitoneum AI triage report"));
    if (c.good() && t.addContentItem(DSRTypes::RT_contains, DSRTypes::VT_Code, DSRTypes::AM_belowCurrent) == 0)
        c = EC_IllegalCall;
    if (c.good()) c = t.getCurrentContentItem().setConceptName(DSRCodedEntryValue("121071", "DCM", "Finding"));
    if (c.good())
        c = t.getCurrentContentItem().setCodeValue(DSRCodedEntryValue("36406009", "SCT", "Pneumoperitoneum"));
    if (c.good() && t.addContentItem(DSRTypes::RT_contains, DSRTypes::VT_Code, DSRTypes::AM_afterCurrent) == 0)
        c = EC_IllegalCall;
    if (c.good())
        c = t.getCurrentContentItem().setConceptName(DSRCodedEntryValue("FA0002", "99FREEAIR", "AI assessment"));
    if (c.good())
        c = t.getCurrentContentItem().setCodeValue(
            r->decision < 0 ? DSRCodedEntryValue("FA0012", "99FREEAIR", "No operating point")
            : positive      ? DSRCodedEntryValue("FA0010", "99FREEAIR", "Suspected")
                            : DSRCodedEntryValue("FA0011", "99FREEAIR", "Not suspected"));
    if (c.good() && t.addContentItem(DSRTypes::RT_contains, DSRTypes::VT_Num, DSRTypes::AM_afterCurrent) == 0)
        c = EC_IllegalCall;
    if (c.good())
        c = t.getCurrentContentItem().setConceptName(
            DSRCodedEntryValue("FA0003", "99FREEAIR", "Pneumoperitoneum probability"));
    if (c.good())
        c = t.getCurrentContentItem().setNumericValue(
            DSRNumericMeasurementValue(fmt_num(r->score).c_str(), DSRCodedEntryValue("1", "UCUM", "no units")));
    if (c.good() && !std::isnan(r->threshold)) {
        if (t.addContentItem(DSRTypes::RT_contains, DSRTypes::VT_Num, DSRTypes::AM_afterCurrent) == 0)
            c = EC_IllegalCall;
        if (c.good())
            c = t.getCurrentContentItem().setConceptName(
                DSRCodedEntryValue("FA0004", "99FREEAIR", "Operating point threshold"));
        if (c.good())
            c = t.getCurrentContentItem().setNumericValue(DSRNumericMeasurementValue(
                fmt_num(r->threshold).c_str(), DSRCodedEntryValue("1", "UCUM", "no units")));
        if (c.good() && r->threshold_rule && r->threshold_rule[0]) {
            if (t.addContentItem(DSRTypes::RT_contains, DSRTypes::VT_Text, DSRTypes::AM_afterCurrent) == 0)
                c = EC_IllegalCall;
            if (c.good())
                c = t.getCurrentContentItem().setConceptName(
                    DSRCodedEntryValue("FA0005", "99FREEAIR", "Operating point rule"));
            if (c.good()) c = t.getCurrentContentItem().setStringValue(r->threshold_rule);
        }
    }
    if (c.good() && t.addContentItem(DSRTypes::RT_contains, DSRTypes::VT_Text, DSRTypes::AM_afterCurrent) == 0)
        c = EC_IllegalCall;
    if (c.good()) c = t.getCurrentContentItem().setConceptName(DSRCodedEntryValue("111001", "DCM", "Algorithm Name"));
    if (c.good()) c = t.getCurrentContentItem().setStringValue(r->model_name && r->model_name[0] ? r->model_name : "unknown");
    if (c.good() && t.addContentItem(DSRTypes::RT_contains, DSRTypes::VT_Text, DSRTypes::AM_afterCurrent) == 0)
        c = EC_IllegalCall;
    if (c.good())
        c = t.getCurrentContentItem().setConceptName(DSRCodedEntryValue("111003", "DCM", "Algorithm Version"));
    if (c.good())
        c = t.getCurrentContentItem().setStringValue(r->model_version && r->model_version[0] ? r->model_version
                                                                                             : "unknown");
    if (c.good() && t.addContentItem(DSRTypes::RT_contains, DSRTypes::VT_Image, DSRTypes::AM_afterCurrent) == 0)
        c = EC_IllegalCall;
    if (c.good())
        c = t.getCurrentContentItem().setConceptName(DSRCodedEntryValue("121112", "DCM", "Source of Measurement"));
    if (c.good()) c = t.getCurrentContentItem().setImageReference(DSRImageReferenceValue(src_cls, src_inst), OFFalse);
    if (c.good()) c = doc.getCurrentRequestedProcedureEvidence().addItem(*sds, OFFalse);
    if (c.bad()) return fa_error_set(err, FA_ERR_BACKEND, "%s: cannot build the SR: %s", sr_path, c.text());

    DcmFileFormat out;
    DcmDataset *ds = out.getDataset();
    c = doc.write(*ds);
    if (c.bad()) return fa_error_set(err, FA_ERR_BACKEND, "%s: cannot encode the SR: %s", sr_path, c.text());
    copy_shared(sds, ds);
    ds->putAndInsertString(DCM_SeriesNumber, "9901");
    ds->putAndInsertString(DCM_InstanceNumber, "1");
    OFString uid;
    ds->findAndGetOFString(DCM_SOPInstanceUID, uid);
    if (sop_uid_out) copy_str(sop_uid_out, 65, uid.c_str());
    return save_atomic(out, sr_path, err);
}

extern "C" fa_status dicom_net_write_sc(const char *source_path, const dicom_net_result *r, const uint8_t *rgb, int w,
                                        int h, const char *sc_path, char *sop_uid_out, fa_error *err) {
    quiet_dcmtk_once();
    if (w < 1 || h < 1 || w > 65535 || h > 65535)
        return fa_error_set(err, FA_ERR_ARG, "%s: bad image size %dx%d", sc_path, w, h);
    DcmFileFormat src;
    fa_status st = load_source(source_path, src, err);
    if (st != FA_OK) return st;
    DcmDataset *sds = src.getDataset();
    OFString src_cls, src_inst;
    sds->findAndGetOFString(DCM_SOPClassUID, src_cls);
    sds->findAndGetOFString(DCM_SOPInstanceUID, src_inst);

    DcmFileFormat out;
    DcmDataset *ds = out.getDataset();
    char uid[100], series[100];
    dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT);
    dcmGenerateUniqueIdentifier(series, SITE_SERIES_UID_ROOT);
    OFString date, time;
    OFDateTime::getCurrentDateTime().getDate().getISOFormattedDate(date, OFFalse);
    OFDateTime::getCurrentDateTime().getTime().getISOFormattedTime(time, OFTrue, OFFalse, OFFalse, OFFalse);
    copy_shared(sds, ds);
    char desc[256];
    snprintf(desc, sizeof desc, "Grad-CAM overlay; p=%.4f; %s", r->score,
             r->decision == 1 ? "SUSPECTED" : r->decision == 0 ? "not suspected" : "no operating point");
    struct kv {
        DcmTagKey k;
        const char *v;
    } kvs[] = {
        {DCM_SOPClassUID, UID_SecondaryCaptureImageStorage},
        {DCM_SOPInstanceUID, uid},
        {DCM_SeriesInstanceUID, series},
        {DCM_Modality, "OT"},
        {DCM_SeriesNumber, "9902"},
        {DCM_InstanceNumber, "1"},
        {DCM_SeriesDescription, "AI triage: pneumoperitoneum heatmap"},
        {DCM_ConversionType, "WSD"},
        {DCM_Manufacturer, "freeair"},
        {DCM_ImageType, "DERIVED\\SECONDARY"},
        {DCM_DerivationDescription, desc},
        {DCM_ContentDate, date.c_str()},
        {DCM_ContentTime, time.c_str()},
        {DCM_PatientOrientation, ""},
        {DCM_Laterality, ""},
        {DCM_BurnedInAnnotation, "NO"},
        {DCM_PhotometricInterpretation, "RGB"},
    };
    OFCondition c = EC_Normal;
    for (const kv &e : kvs)
        if (c.good()) c = ds->putAndInsertString(e.k, e.v);
    if (c.good()) c = ds->putAndInsertUint16(DCM_SamplesPerPixel, 3);
    if (c.good()) c = ds->putAndInsertUint16(DCM_PlanarConfiguration, 0);
    if (c.good()) c = ds->putAndInsertUint16(DCM_Rows, (Uint16)h);
    if (c.good()) c = ds->putAndInsertUint16(DCM_Columns, (Uint16)w);
    if (c.good()) c = ds->putAndInsertUint16(DCM_BitsAllocated, 8);
    if (c.good()) c = ds->putAndInsertUint16(DCM_BitsStored, 8);
    if (c.good()) c = ds->putAndInsertUint16(DCM_HighBit, 7);
    if (c.good()) c = ds->putAndInsertUint16(DCM_PixelRepresentation, 0);
    if (c.good()) {
        DcmItem *item = NULL;
        c = ds->findOrCreateSequenceItem(DCM_SourceImageSequence, item, -2);
        if (c.good()) c = item->putAndInsertString(DCM_ReferencedSOPClassUID, src_cls.c_str());
        if (c.good()) c = item->putAndInsertString(DCM_ReferencedSOPInstanceUID, src_inst.c_str());
    }
    if (c.good()) c = ds->putAndInsertUint8Array(DCM_PixelData, rgb, (unsigned long)w * (unsigned long)h * 3UL);
    if (c.bad()) return fa_error_set(err, FA_ERR_BACKEND, "%s: cannot build the image: %s", sc_path, c.text());
    if (sop_uid_out) copy_str(sop_uid_out, 65, uid);
    return save_atomic(out, sc_path, err);
}
